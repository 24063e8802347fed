"""Convert a frozen TensorFlow inference graph (FaceNet's) into an ONNX model, in memory.

No TensorFlow: the GraphDef is read by app/inference/tf_graph.py and the ONNX graph built
with the `onnx` package. Supports the ops of FaceNet's InceptionResNetV1 frozen graph.

TF NHWC -> ONNX NCHW: the input keeps TF's layout [N, H, W, C] and is transposed once;
every 4-D tensor derived from it is tracked as NCHW and axes are remapped. Conv2D with
its BiasAdd and a constant scalar Mul (the residual scales) becomes one Conv. A leading
1 in a Reshape's shape (a batch size hard-coded when the graph was frozen) becomes 0, so
the model takes any batch size.
"""
from __future__ import annotations

import collections

import numpy as np
from onnx import TensorProto, checker, helper, numpy_helper

from app.inference.tf_graph import read_graphdef

OPSET = 13

NHWC_TO_NCHW_AXIS = {0: 0, 1: 2, 2: 3, 3: 1, -1: 1, -2: 3, -3: 2, -4: 0}


def tname(ref):
    """TF input reference -> canonical tensor name ('node' or 'node:k')."""
    ref = ref.lstrip('^')
    return ref[:-2] if ref.endswith(':0') else ref


class Converter:
    def __init__(self, nodes, opset=OPSET):
        self.nodes = nodes
        self.by_name = {n.name: n for n in nodes}
        self.opset = opset
        self.consumers = collections.defaultdict(list)
        for n in nodes:
            for i in n.inputs:
                if not i.startswith('^'):
                    self.consumers[tname(i)].append(n)
        self.onnx_nodes, self.inits, self.inputs = [], [], []
        self.layout = {}      # tensor name -> 'NCHW' if a 4-D tensor was transposed from NHWC
        self.consts = {}      # tensor name -> numpy constant (TF Const nodes)
        self.alias = {}       # tf tensor name -> onnx tensor name (for folded nodes)
        self.skip = set()
        self._uid = 0

    # -- helpers -----------------------------------------------------------------------------
    def uniq(self, base):
        self._uid += 1
        return f"{base}__{self._uid}"

    def src(self, ref):
        t = tname(ref)
        return self.alias.get(t, t)

    def init(self, name, arr):
        self.inits.append(numpy_helper.from_array(np.asarray(arr), name))
        return name

    def emit(self, op, inputs, outputs, **attrs):
        self.onnx_nodes.append(helper.make_node(op, inputs, outputs, name=outputs[0], **attrs))

    def const_of(self, ref):
        return self.consts.get(tname(ref))

    def only_consumer(self, name, op):
        c = self.consumers.get(name, [])
        return c[0] if len(c) == 1 and c[0].op == op else None

    # -- main ----------------------------------------------------------------------------------
    def topo_order(self):
        """GraphDef node order is not guaranteed to be topological (it is not in this file)."""
        order, state = [], {}
        for root in self.nodes:
            stack = [(root, False)]
            while stack:
                n, done = stack.pop()
                if done:
                    state[n.name] = 2
                    order.append(n)
                    continue
                if state.get(n.name):
                    continue
                state[n.name] = 1
                stack.append((n, True))
                for i in n.inputs:
                    d = self.by_name[tname(i).split(':')[0]]
                    if not state.get(d.name):
                        stack.append((d, False))
        return order

    def run(self, outputs):
        self.nodes = self.topo_order()
        for n in self.nodes:
            if n.op == 'Const':
                self.consts[n.name] = n.attr['value']
        for n in self.nodes:
            if n.op == 'Const' or n.name in self.skip:
                continue
            fn = getattr(self, 'op_' + n.op, None)
            if fn is None:
                raise NotImplementedError(f"op {n.op} ({n.name})")
            fn(n)
        used = {i for nd in self.onnx_nodes for i in nd.input}
        inits = [t for t in self.inits if t.name in used]
        outs = []
        for o in outputs:
            real = self.src(o)
            if real != o:
                self.emit('Identity', [real], [o])
            outs.append(helper.make_tensor_value_info(o, TensorProto.FLOAT, ['N', None]))
        graph = helper.make_graph(self.onnx_nodes, 'facenet_inception_resnet_v1', self.inputs,
                                  outs, initializer=inits)
        model = helper.make_model(graph, opset_imports=[helper.make_opsetid('', self.opset)],
                                  producer_name='facegroup graph_to_onnx')
        return model

    # -- ops -------------------------------------------------------------------------------------
    def op_Placeholder(self, n):
        shape = list(n.attr['shape'][1]) if n.attr.get('shape') else [None, None, None, 3]
        dims = ['N'] + shape[1:]
        self.inputs.append(helper.make_tensor_value_info(n.name, TensorProto.FLOAT, dims))
        if len(shape) == 4:  # NHWC input: one transpose, then NCHW throughout
            out = self.uniq(n.name + '_nchw')
            self.emit('Transpose', [n.name], [out], perm=[0, 3, 1, 2])
            self.alias[n.name] = out
            self.layout[out] = 'NCHW'

    def op_Identity(self, n):
        self.alias[n.name] = self.src(n.inputs[0])

    def _pads(self, padding, ksize, strides):
        if padding == 'VALID':
            return {'pads': [0, 0, 0, 0]}
        if all(s == 1 for s in strides):  # SAME, stride 1: size-independent explicit pads
            tot = [k - 1 for k in ksize]
            return {'pads': [t // 2 for t in tot] + [t - t // 2 for t in tot]}
        return {'auto_pad': 'SAME_UPPER'}  # TF SAME puts the extra pixel at the end

    def op_Conv2D(self, n):
        x = self.src(n.inputs[0])
        assert self.layout.get(x) == 'NCHW', n.name
        assert n.attr.get('data_format', 'NHWC') == 'NHWC'
        w = self.const_of(n.inputs[1])
        assert w is not None, f"non-constant conv weights in {n.name}"
        w = np.ascontiguousarray(w.transpose(3, 2, 0, 1)).astype(np.float32)  # HWIO -> OIHW
        b = np.zeros(w.shape[0], np.float32)
        strides = [n.attr['strides'][1], n.attr['strides'][2]]
        dil = n.attr.get('dilations') or [1, 1, 1, 1]
        out_tf = n.name
        # fold BiasAdd (const) and scalar Mul (const) that follow, when they are sole consumers
        ba = self.only_consumer(out_tf, 'BiasAdd')
        if ba is not None and self.const_of(ba.inputs[1]) is not None:
            b = b + self.const_of(ba.inputs[1]).astype(np.float32)
            self.skip.add(ba.name)
            out_tf = ba.name
            mul = self.only_consumer(out_tf, 'Mul')
            if mul is not None:
                other = [i for i in mul.inputs if tname(i) != out_tf]
                s = self.const_of(other[0]) if len(other) == 1 else None
                if s is not None and s.size == 1:
                    s = np.float32(s.ravel()[0])
                    w, b = w * s, b * s
                    self.skip.add(mul.name)
                    out_tf = mul.name
        wn = self.init(n.name + '/W', w)
        bn = self.init(n.name + '/B', b)
        self.emit('Conv', [x, wn, bn], [out_tf], kernel_shape=list(w.shape[2:]),
                  strides=strides, dilations=[dil[1], dil[2]],
                  **self._pads(n.attr['padding'], w.shape[2:], strides))
        self.layout[out_tf] = 'NCHW'

    def _bcast_vec(self, x, vec, name):
        """Shape a per-channel vector so it broadcasts against tensor x."""
        if self.layout.get(x) == 'NCHW':
            vec = vec.reshape(1, -1, 1, 1)
        return self.init(name, vec.astype(np.float32))

    def op_BiasAdd(self, n):
        x = self.src(n.inputs[0])
        b = self.const_of(n.inputs[1])
        bn = self._bcast_vec(x, b, n.name + '/bias') if b is not None else self.src(n.inputs[1])
        self.emit('Add', [x, bn], [n.name])
        self.layout[n.name] = self.layout.get(x)

    def _binary(self, n, op):
        ins, lay = [], None
        for i in n.inputs:
            c = self.const_of(i)
            if c is not None:
                ins.append(self.init(self.uniq(n.name + '/c'), c.astype(np.float32)
                                     if c.ndim == 0 or c.size == 1 else c))
            else:
                s = self.src(i)
                lay = lay or self.layout.get(s)
                ins.append(s)
        if lay == 'NCHW':  # non-scalar constants would need their layout remapped
            for i in n.inputs:
                c = self.const_of(i)
                assert c is None or c.size == 1 or c.ndim == 1, f"layout of const in {n.name}"
                if c is not None and c.ndim == 1 and c.size > 1:
                    idx = [tname(j) for j in n.inputs].index(tname(i))
                    ins[idx] = self._bcast_vec(ins[0], c, self.uniq(n.name + '/v'))
        self.emit(op, ins, [n.name])
        self.layout[n.name] = lay

    def op_Add(self, n):
        self._binary(n, 'Add')

    op_AddV2 = op_Add

    def op_Mul(self, n):
        self._binary(n, 'Mul')

    def op_Maximum(self, n):
        self._binary(n, 'Max')

    def op_Relu(self, n):
        x = self.src(n.inputs[0])
        self.emit('Relu', [x], [n.name])
        self.layout[n.name] = self.layout.get(x)

    def op_Square(self, n):
        x = self.src(n.inputs[0])
        self.emit('Mul', [x, x], [n.name])
        self.layout[n.name] = self.layout.get(x)

    def op_Rsqrt(self, n):
        x = self.src(n.inputs[0])
        t = self.uniq(n.name + '/sqrt')
        self.emit('Sqrt', [x], [t])
        self.emit('Reciprocal', [t], [n.name])
        self.layout[n.name] = self.layout.get(x)

    def op_ConcatV2(self, n):
        ins = [self.src(i) for i in n.inputs[:-1]]
        axis = int(self.const_of(n.inputs[-1]))
        lays = {self.layout.get(i) for i in ins}
        assert len(lays) == 1, n.name
        if lays == {'NCHW'}:
            axis = NHWC_TO_NCHW_AXIS[axis]
        self.emit('Concat', ins, [n.name], axis=axis)
        self.layout[n.name] = lays.pop()

    def _pool(self, n, op):
        x = self.src(n.inputs[0])
        assert self.layout.get(x) == 'NCHW'
        k = [n.attr['ksize'][1], n.attr['ksize'][2]]
        s = [n.attr['strides'][1], n.attr['strides'][2]]
        extra = {}
        if op == 'AveragePool':
            extra['count_include_pad'] = 0  # TF excludes padding from the average
        self.emit(op, [x], [n.name], kernel_shape=k, strides=s,
                  **self._pads(n.attr['padding'], k, s), **extra)
        self.layout[n.name] = 'NCHW'

    def op_MaxPool(self, n):
        self._pool(n, 'MaxPool')

    def op_AvgPool(self, n):
        self._pool(n, 'AveragePool')

    def op_Reshape(self, n):
        x = self.src(n.inputs[0])
        shape = self.const_of(n.inputs[1])
        assert shape is not None, f"dynamic reshape {n.name}"
        shape = shape.astype(np.int64).copy()
        if self.layout.get(x) == 'NCHW':  # reshape must see TF's NHWC element order
            t = self.uniq(n.name + '/nhwc')
            self.emit('Transpose', [x], [t], perm=[0, 2, 3, 1])
            x = t
        if len(shape) >= 2 and shape[0] == 1:
            shape[0] = 0  # hard-coded batch 1 -> copy batch dim from input (dynamic batch)
        self.emit('Reshape', [x, self.init(n.name + '/shape', shape)], [n.name])

    def op_MatMul(self, n):
        a, b = self.src(n.inputs[0]), self.const_of(n.inputs[1])
        assert not n.attr.get('transpose_a')
        if b is None:
            b_name = self.src(n.inputs[1])
            assert not n.attr.get('transpose_b')
        else:
            if n.attr.get('transpose_b'):
                b = b.T
            b_name = self.init(n.name + '/W', np.ascontiguousarray(b))
        self.emit('MatMul', [a, b_name], [n.name])

    def op_FusedBatchNorm(self, n):
        x = self.src(n.inputs[0])
        assert not n.attr.get('is_training', False)
        gamma, beta, mean, var = (self.const_of(i).astype(np.float64) for i in n.inputs[1:5])
        eps = n.attr.get('epsilon', 1e-3)
        scale = gamma / np.sqrt(var + eps)
        shift = beta - mean * scale
        lay = self.layout.get(x)
        if lay is None:  # tensor carries TF NHWC layout: channel is the last axis
            sc, sh = self.init(n.name + '/scale', scale.astype(np.float32)), \
                self.init(n.name + '/shift', shift.astype(np.float32))
        else:
            sc, sh = self._bcast_vec(x, scale, n.name + '/scale'), \
                self._bcast_vec(x, shift, n.name + '/shift')
        t = self.uniq(n.name + '/mul')
        self.emit('Mul', [x, sc], [t])
        self.emit('Add', [t, sh], [n.name])
        self.layout[n.name] = lay

    op_FusedBatchNormV3 = op_FusedBatchNorm

    def op_Sum(self, n):
        x = self.src(n.inputs[0])
        axes = np.atleast_1d(self.const_of(n.inputs[1])).astype(np.int64)
        assert self.layout.get(x) is None
        keep = int(bool(n.attr.get('keep_dims', False)))
        self.emit('ReduceSum', [x, self.init(n.name + '/axes', axes)], [n.name], keepdims=keep)


def graph_to_onnx(graph_def: bytes, outputs: tuple[str, ...] = ("embeddings",)) -> bytes:
    """Serialized ONNX model for a frozen GraphDef."""
    model = Converter(read_graphdef(graph_def)).run(list(outputs))
    checker.check_model(model)
    return model.SerializeToString()
