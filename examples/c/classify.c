/* Classifies one row of 30 features with the example MLP through the C API.
 * Usage: classify MODEL.onnx [30 feature values; default 0.5 each] */
#include <deskml/deskml.h>
#include <stdio.h>
#include <stdlib.h>

static int fail(const char* what, deskml_status s) {
  fprintf(stderr, "%s: %s: %s\n", what, deskml_status_name(s), deskml_last_error());
  return 1;
}

int main(int argc, char** argv) {
  float features[30];
  const int64_t shape[2] = {1, 30};
  const char* names[1] = {"features"};
  deskml_engine* engine = NULL;
  deskml_tensor* input = NULL;
  deskml_result* result = NULL;
  deskml_status s;
  int i;
  if (argc != 2 && argc != 32) {
    fprintf(stderr, "usage: classify MODEL.onnx [30 feature values]\n");
    return 2;
  }
  if ((s = DESKML_CHECK_VERSION()) != DESKML_OK) return fail("version", s);
  for (i = 0; i < 30; ++i) features[i] = argc == 32 ? strtof(argv[i + 2], NULL) : 0.5f;

  if ((s = deskml_engine_create(NULL, NULL, &engine)) != DESKML_OK) return fail("engine", s);
  if ((s = deskml_engine_add_model_file(engine, "mlp", argv[1], NULL)) != DESKML_OK) return fail("model", s);
  /* No copy: the engine reads `features` in place. */
  if ((s = deskml_tensor_borrow(DESKML_DTYPE_FLOAT32, shape, 2, features, sizeof features, NULL, NULL, &input)))
    return fail("input", s);
  {
    const deskml_tensor* inputs[1] = {input};
    if ((s = deskml_engine_run(engine, "mlp", names, inputs, 1, NULL, &result)) != DESKML_OK) return fail("run", s);
  }
  {
    const float* logits = deskml_tensor_data(deskml_result_find_output(result, "logits"));
    printf("logits %.6f %.6f -> class %d\n", logits[0], logits[1], logits[1] > logits[0]);
  }
  deskml_result_destroy(result);
  deskml_tensor_destroy(input);
  deskml_engine_destroy(engine);
  return 0;
}
