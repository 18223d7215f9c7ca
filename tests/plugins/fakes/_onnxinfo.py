"""The graph inputs of an ONNX file, read straight from its protobuf wire format, for the fake vendor tools: they
check a model as the real converters do (input names, dynamic dimensions) without paying for importing onnx on
every call (or needing it on a "board")."""

from pathlib import Path


def _fields(buf: bytes):
    """(field number, wire type, value) of one protobuf message; value is bytes for length-delimited fields."""
    i = 0
    while i < len(buf):
        key, i = _varint(buf, i)
        number, wire = key >> 3, key & 7
        if wire == 0:
            value, i = _varint(buf, i)
        elif wire == 2:
            size, i = _varint(buf, i)
            value, i = buf[i:i + size], i + size
        elif wire == 1:
            value, i = buf[i:i + 8], i + 8
        elif wire == 5:
            value, i = buf[i:i + 4], i + 4
        else:
            raise ValueError(f"not an ONNX file (wire type {wire})")
        yield number, wire, value


def _varint(buf: bytes, i: int):
    shift = result = 0
    while True:
        b = buf[i]
        i += 1
        result |= (b & 0x7F) << shift
        shift += 7
        if not b & 0x80:
            return result, i


def inputs(path) -> dict:
    """{input name: [dimension, ...]}: an int for a fixed size, the parameter's name (str) for a dynamic one."""
    graph = next(v for n, w, v in _fields(Path(path).read_bytes()) if n == 7 and w == 2)  # ModelProto.graph
    weights, found = set(), {}
    for n, w, v in _fields(graph):
        if n == 5 and w == 2:  # GraphProto.initializer: TensorProto.name is field 8
            weights.update(x.decode() for m, _, x in _fields(v) if m == 8)
        elif n == 11 and w == 2:  # GraphProto.input: ValueInfoProto
            name, dims = "", []
            for m, _, x in _fields(v):
                if m == 1:
                    name = x.decode()
                elif m == 2:  # TypeProto.tensor_type -> shape -> dim
                    tensor = next((t for k, _, t in _fields(x) if k == 1), b"")
                    shape = next((s for k, _, s in _fields(tensor) if k == 2), b"")
                    for k, _, dim in _fields(shape):
                        if k == 1:
                            parts = {f: val for f, _, val in _fields(dim)}
                            dims.append(parts[1] if 1 in parts else parts.get(2, b"?").decode())
            found[name] = dims
    return {k: v for k, v in found.items() if k not in weights}
