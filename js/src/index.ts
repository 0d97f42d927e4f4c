// deskml for webviews and Node: the browser-safe entry (fetch and WebSocket only; no Node imports).
// Node and Electron main processes also get the stdio sidecar and server spawning from 'deskml/node'.

export { DeskmlError, type DeskmlErrorOptions } from './errors.js';
export {
  type DataOf,
  type Datatype,
  type Tensor,
  type TensorData,
  type TensorInit,
  DATATYPES,
  bf16ToFloat,
  checkTensor,
  elementCount,
  elementSize,
  floatToBf16,
  floatToHalf,
  halfToFloat,
  isDatatype,
  tensor,
  tensorBytes,
  tensorFromBytes,
  tensorNumbers,
  tensorStrings,
} from './tensor.js';
export { type InferOptions, type InferResult } from './protocol.js';
export {
  type CallOptions,
  type ClientOptions,
  type ModelMetadata,
  type ModelOptions,
  type RepositoryEntry,
  type ServerMetadata,
  type StreamAnswer,
  type StreamItem,
  type StreamSummary,
  type TensorMetadata,
  DeskmlClient,
} from './client.js';
export {
  type StreamInferOptions,
  type StreamMessage,
  type WebSocketConstructor,
  type WebSocketLike,
  InferenceStream,
} from './stream.js';
