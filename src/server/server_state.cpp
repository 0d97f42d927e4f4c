#include "server/server_state.hpp"

#include "features/feature_service.hpp"

namespace deskml::server {

void ServerState::infer_async(const std::string& model, InferRequest& request, serving::InferOptions options,
                              serving::Runtime::Callback done) {
  if (!request.features) {
    serving::Tensors inputs = std::move(request.inputs);
    return runtime.infer_async(model, std::move(inputs), std::move(options), std::move(done));
  }
  if (features == nullptr) {
    return done(unsupported("this server does not answer feature lookups"));
  }
  features->infer_async(model, request.features->source, request.features->keys, std::move(options), std::move(done));
}

}  // namespace deskml::server
