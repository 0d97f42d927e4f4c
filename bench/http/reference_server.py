#!/usr/bin/python3
"""The reference for `make bench-http`: the MLP served the way the usual Python guide
does it, asyncio + aiohttp with a ThreadPoolExecutor around PyTorch, answering the same
KServe v2 JSON infer endpoint as deskml (POST /v2/models/mlp/infer).

The weights come from the ONNX file deskml serves (read with the `onnx` package and
loaded into an equivalent torch module), so both servers compute the same function.
Everything is from Debian packages: python3-aiohttp, python3-torch, python3-onnx.

    reference_server.py --model build/bench-http/models/mlp/1/model.onnx --port 8001
"""
import argparse
import asyncio
import concurrent.futures
import os

import numpy as np
import onnx
import onnx.numpy_helper
import torch
from aiohttp import web


class MLP(torch.nn.Module):
    """30 -> 64 -> 32 -> 2 with ReLU, as tests/models/make_reference_models.py builds it."""

    def __init__(self, dims=(30, 64, 32)):
        super().__init__()
        layers = []
        for a, b in zip(dims, dims[1:]):
            layers += [torch.nn.Linear(a, b), torch.nn.ReLU()]
        self.net = torch.nn.Sequential(*layers, torch.nn.Linear(dims[-1], 2))

    def forward(self, x):
        return self.net(x)


def load_mlp(path):
    weights = {i.name: torch.from_numpy(onnx.numpy_helper.to_array(i).copy()) for i in onnx.load(path).graph.initializer}
    model = MLP()
    model.load_state_dict(weights)  # the ONNX initializer names are the state_dict keys (net.0.weight, ...)
    return model.eval()


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", required=True, help="the MLP's model.onnx")
    ap.add_argument("--port", type=int, default=8001)
    ap.add_argument("--workers", type=int, default=os.cpu_count(), help="ThreadPoolExecutor size")
    args = ap.parse_args()

    torch.set_num_threads(1)  # one intra-op thread per executor worker, as the guides advise
    model = load_mlp(args.model)
    executor = concurrent.futures.ThreadPoolExecutor(max_workers=args.workers)

    def predict(features):
        with torch.inference_mode():
            return model(torch.from_numpy(features)).numpy()

    async def infer(request):
        body = await request.json()
        try:
            inp = next(i for i in body["inputs"] if i["name"] == "features")
            features = np.asarray(inp["data"], dtype=np.float32).reshape(inp["shape"])
        except (KeyError, StopIteration, ValueError, TypeError) as e:
            return web.json_response({"error": f"bad request: {e}"}, status=400)
        logits = await asyncio.get_running_loop().run_in_executor(executor, predict, features)
        out = {"model_name": "mlp", "model_version": "1",
               "outputs": [{"name": "logits", "datatype": "FP32", "shape": list(logits.shape),
                            "data": logits.reshape(-1).tolist()}]}
        if "id" in body:
            out["id"] = body["id"]
        return web.json_response(out)

    async def live(_):
        return web.json_response({"live": True})

    app = web.Application(client_max_size=64 << 20)
    app.add_routes([web.post("/v2/models/mlp/infer", infer), web.get("/v2/health/live", live)])
    web.run_app(app, host="127.0.0.1", port=args.port, access_log=None, print=None)


if __name__ == "__main__":
    main()
