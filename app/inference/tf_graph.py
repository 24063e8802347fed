"""A small reader for TensorFlow GraphDef protobufs (numpy only, no TensorFlow).

Decodes just what converting a frozen inference graph needs: GraphDef.node ->
NodeDef{name, op, input, device, attr}; AttrValue (s, i, f, b, type, shape, tensor, list);
TensorProto (dtype, shape, tensor_content, *_val); TensorShapeProto. Field numbers are
those of TensorFlow's graph.proto / node_def.proto / attr_value.proto / tensor.proto.
"""
from __future__ import annotations

import numpy as np

# TensorFlow DataType enum -> numpy
TF_DTYPES = {1: np.float32, 2: np.float64, 3: np.int32, 4: np.uint8, 5: np.int16, 6: np.int8,
             7: object, 9: np.int64, 10: np.bool_, 19: np.float16}


def _varint(buf, pos):
    result = shift = 0
    while True:
        b = buf[pos]
        pos += 1
        result |= (b & 0x7F) << shift
        if b < 0x80:
            return result, pos
        shift += 7


def iter_fields(buf, start=0, end=None):
    """Yield (field_number, wire_type, value) for one message; value is int for varint/fixed,
    a memoryview slice for length-delimited fields."""
    pos = start
    end = len(buf) if end is None else end
    while pos < end:
        key, pos = _varint(buf, pos)
        field, wt = key >> 3, key & 7
        if wt == 0:
            val, pos = _varint(buf, pos)
        elif wt == 1:
            val = buf[pos:pos + 8]; pos += 8
        elif wt == 2:
            ln, pos = _varint(buf, pos)
            val = buf[pos:pos + ln]; pos += ln
        elif wt == 5:
            val = buf[pos:pos + 4]; pos += 4
        else:
            raise ValueError(f"unsupported wire type {wt} at {pos}")
        yield field, wt, val


def _signed64(v):
    return v - (1 << 64) if v >= (1 << 63) else v


def _packed_varints(val, wt):
    if wt == 0:
        return [_signed64(val)]
    out, pos = [], 0
    while pos < len(val):
        v, pos = _varint(val, pos)
        out.append(_signed64(v))
    return out


def parse_shape(buf):
    dims, unknown = [], False
    for f, wt, v in iter_fields(buf):
        if f == 2:  # Dim
            size = 0
            for f2, wt2, v2 in iter_fields(v):
                if f2 == 1:
                    size = _signed64(v2)
            dims.append(size)
        elif f == 3:
            unknown = bool(v)
    return None if unknown else dims


def parse_tensor(buf):
    dtype, shape, content = 1, [], None
    vals = {}
    for f, wt, v in iter_fields(buf):
        if f == 1:
            dtype = v
        elif f == 2:
            shape = parse_shape(v)
        elif f == 4:
            content = bytes(v)
        elif f == 5:  # float_val (packed or not)
            vals.setdefault('f', []).extend(np.frombuffer(bytes(v), '<f4').tolist())
        elif f == 6:
            vals.setdefault('d', []).extend(np.frombuffer(bytes(v), '<f8').tolist())
        elif f in (7, 10, 11):  # int_val, int64_val, bool_val
            vals.setdefault('i', []).extend(_packed_varints(v, wt))
        elif f == 8:
            vals.setdefault('s', []).append(bytes(v))
    npdt = TF_DTYPES.get(dtype)
    if npdt is None:
        raise ValueError(f"unsupported tensor dtype {dtype}")
    n = int(np.prod(shape)) if shape else 1
    if content is not None:
        arr = np.frombuffer(content, dtype=np.dtype(npdt).newbyteorder('<')).astype(npdt)
    else:
        raw = next(iter(vals.values()), [])
        arr = np.array(raw, dtype=npdt)
        if arr.size == 1 and n > 1:  # TF stores splat constants as one value
            arr = np.full(n, arr[0], dtype=npdt)
        elif arr.size == 0:
            arr = np.zeros(n, dtype=npdt)
    return arr.reshape(shape)


def parse_attr_value(buf):
    for f, wt, v in iter_fields(buf):
        if f == 2:
            return bytes(v).decode('utf-8', 'replace')
        if f == 3:
            return _signed64(v)
        if f == 4:
            return float(np.frombuffer(bytes(v), '<f4')[0])
        if f == 5:
            return bool(v)
        if f == 6:
            return ('dtype', v)
        if f == 7:
            return ('shape', parse_shape(v))
        if f == 8:
            return parse_tensor(v)
        if f == 1:  # ListValue
            out = []
            for f2, wt2, v2 in iter_fields(v):
                if f2 == 2:
                    out.append(bytes(v2).decode('utf-8', 'replace'))
                elif f2 in (3, 5, 6):
                    out.extend(_packed_varints(v2, wt2))
                elif f2 == 4:
                    out.extend(np.frombuffer(bytes(v2), '<f4').tolist())
                elif f2 == 7:
                    out.append(parse_shape(v2))
                elif f2 == 8:
                    out.append(parse_tensor(v2))
            return out
    return None


class Node:
    __slots__ = ('name', 'op', 'inputs', 'device', 'attr')

    def __repr__(self):
        return f"Node({self.name!r}, {self.op}, {self.inputs})"


def parse_node(buf):
    n = Node()
    n.name, n.op, n.inputs, n.device, n.attr = '', '', [], '', {}
    for f, wt, v in iter_fields(buf):
        if f == 1:
            n.name = bytes(v).decode()
        elif f == 2:
            n.op = bytes(v).decode()
        elif f == 3:
            n.inputs.append(bytes(v).decode())
        elif f == 4:
            n.device = bytes(v).decode()
        elif f == 5:
            key, val = None, None
            for f2, wt2, v2 in iter_fields(v):
                if f2 == 1:
                    key = bytes(v2).decode()
                elif f2 == 2:
                    val = parse_attr_value(v2)
            n.attr[key] = val
    return n


def read_graphdef(data: bytes) -> list[Node]:
    view = memoryview(data)
    return [parse_node(v) for f, wt, v in iter_fields(view) if f == 1]
