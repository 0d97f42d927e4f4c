/* The C API's leg of the cross-binding test: runs a float32 [rows, cols] input through one model
 * input and prints every value of the named output as a hexadecimal float ("%a", exact), one
 * row per line. Uses only <deskml/deskml.h>.
 * Usage: capi_run MODEL.onnx INPUT_NAME OUTPUT_NAME INPUT.f32 ROWS COLS */
#include <deskml/deskml.h>
#include <stdio.h>
#include <stdlib.h>

static int fail(const char* what, deskml_status s) {
  fprintf(stderr, "capi_run: %s: %s: %s\n", what, deskml_status_name(s), deskml_last_error());
  return 1;
}

int main(int argc, char** argv) {
  deskml_engine* engine = NULL;
  deskml_tensor* input = NULL;
  deskml_result* result = NULL;
  const deskml_tensor* output;
  deskml_status s;
  FILE* f;
  float* data;
  int64_t shape[2];
  size_t count, i, cols;
  const float* values;
  if (argc != 7) {
    fprintf(stderr, "usage: capi_run MODEL.onnx INPUT_NAME OUTPUT_NAME INPUT.f32 ROWS COLS\n");
    return 2;
  }
  if ((s = DESKML_CHECK_VERSION()) != DESKML_OK) return fail("version", s);
  shape[0] = strtoll(argv[5], NULL, 10);
  shape[1] = strtoll(argv[6], NULL, 10);
  count = (size_t)(shape[0] * shape[1]);
  data = malloc(count * sizeof(float));
  f = fopen(argv[4], "rb");
  if (data == NULL || f == NULL || fread(data, sizeof(float), count, f) != count) {
    fprintf(stderr, "capi_run: cannot read %zu floats from %s\n", count, argv[4]);
    return 1;
  }
  fclose(f);
  if ((s = deskml_engine_create(NULL, NULL, &engine)) != DESKML_OK) return fail("engine", s);
  if ((s = deskml_engine_add_model_file(engine, "m", argv[1], NULL)) != DESKML_OK) return fail("model", s);
  if ((s = deskml_tensor_borrow(DESKML_DTYPE_FLOAT32, shape, 2, data, count * sizeof(float), NULL, NULL, &input)))
    return fail("input", s);
  {
    const char* names[1];
    const deskml_tensor* inputs[1];
    names[0] = argv[2];
    inputs[0] = input;
    if ((s = deskml_engine_run(engine, "m", names, inputs, 1, NULL, &result)) != DESKML_OK) return fail("run", s);
  }
  output = deskml_result_find_output(result, argv[3]);
  if (output == NULL) {
    fprintf(stderr, "capi_run: the model has no output %s\n", argv[3]);
    return 1;
  }
  values = deskml_tensor_data(output);
  count = (size_t)deskml_tensor_element_count(output);
  cols = count / (size_t)shape[0];
  for (i = 0; i < count; ++i) printf("%a%c", (double)values[i], (i + 1) % cols == 0 ? '\n' : ' ');
  deskml_result_destroy(result);
  deskml_tensor_destroy(input);
  deskml_engine_destroy(engine);
  free(data);
  return 0;
}
