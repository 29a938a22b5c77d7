"""Fixed-width float vectors for numba kernels, as LLVM vector values.

numba's loop vectorizer leaves the stencil of :mod:`.stencil_runs` scalar (its SLP vectorizer is
off by default), so these intrinsics spell out the vector operations. A :class:`Vector` contains
``LANES`` values of one float dtype. Each operation rounds exactly as the scalar kernels of
:mod:`.stencil_small` do for one lane, so the vector kernels return bit-identical results: the
scalar kernels accumulate ``a += v * w`` (one input channel) and ``a += v0 * w0 + v1 * w1`` (two)
under fastmath ``contract``, which LLVM lowers to ``fmuladd(v, w, a)`` and
``a + fmuladd(v0, w0, v1 * w1)``. ``llvm.fmuladd`` fuses exactly when the target has FMA
instructions, as ``contract`` does for scalars.
"""

from __future__ import annotations

from llvmlite import ir
from numba import types
from numba.core import cgutils
from numba.extending import intrinsic, models, register_model

#: Values per vector: one AVX register of float32, two of float64.
LANES = 8


class Vector(types.Type):
    """``LANES`` values of the float ``dtype``."""

    def __init__(self, dtype: types.Float) -> None:
        self.dtype = dtype
        super().__init__(name=f"Vector{LANES}({dtype})")


@register_model(Vector)
class _VectorModel(models.PrimitiveModel):
    def __init__(self, dmm, fe_type):
        super().__init__(dmm, fe_type, ir.VectorType(dmm.lookup(fe_type.dtype).get_value_type(), LANES))


def _is_float_array(value) -> bool:
    return isinstance(value, types.Array) and isinstance(value.dtype, types.Float) and value.layout == "C"


def _splat(builder, vector_type: ir.VectorType, scalar):
    """Return a vector with ``scalar`` in every lane."""
    undefined = ir.Constant(vector_type, ir.Undefined)
    single = builder.insert_element(undefined, scalar, ir.Constant(ir.IntType(32), 0))
    return builder.shuffle_vector(single, undefined, ir.Constant(ir.VectorType(ir.IntType(32), LANES), [0] * LANES))


def _fmuladd(builder, a, b, c):
    """Return a * b + c lane by lane, fused where the target has FMA instructions."""
    vector_type = a.type
    width = 32 if isinstance(vector_type.element, ir.FloatType) else 64
    function = cgutils.get_or_insert_function(builder.module, ir.FunctionType(vector_type, [vector_type] * 3),
                                              f"llvm.fmuladd.v{LANES}f{width}")
    return builder.call(function, [a, b, c])


@intrinsic
def vector_zero(typingctx, like):
    """Return a vector of zeros of the dtype of the array ``like``."""
    if not _is_float_array(like):
        return None

    def codegen(context, builder, signature, args):
        return ir.Constant(context.get_value_type(signature.return_type), None)

    return Vector(like.dtype)(like), codegen


@intrinsic
def load_pairs(typingctx, array, index):
    """Return (array[index::2], array[index + 1::2]), ``LANES`` values each, from one load.

    Nothing is checked, so the caller must ensure ``index + 2 * LANES <= len(array)``.
    """
    if not _is_float_array(array) or not isinstance(index, types.Integer):
        return None
    vector = Vector(array.dtype)

    def codegen(context, builder, signature, args):
        data = cgutils.create_struct_proxy(signature.args[0])(context, builder, value=args[0]).data
        element = context.get_value_type(array.dtype)
        wide = ir.VectorType(element, 2 * LANES)
        pointer = builder.bitcast(builder.gep(data, [args[1]]), wide.as_pointer())
        values = builder.load(pointer, align=array.dtype.bitwidth // 8)
        undefined = ir.Constant(wide, ir.Undefined)
        lanes = ir.VectorType(ir.IntType(32), LANES)
        even = builder.shuffle_vector(values, undefined, ir.Constant(lanes, list(range(0, 2 * LANES, 2))))
        odd = builder.shuffle_vector(values, undefined, ir.Constant(lanes, list(range(1, 2 * LANES, 2))))
        return context.make_tuple(builder, signature.return_type, [even, odd])

    return types.UniTuple(vector, 2)(array, index), codegen


@intrinsic
def multiply_add(typingctx, accumulator, values, weight):
    """Return ``fmuladd(values, weight, accumulator)``: the scalar ``a += v * w`` in every lane."""
    if not isinstance(accumulator, Vector) or values != accumulator or not isinstance(weight, types.Float):
        return None

    def codegen(context, builder, signature, args):
        total, vector, scalar = args
        scalar = context.cast(builder, scalar, signature.args[2], accumulator.dtype)
        return _fmuladd(builder, vector, _splat(builder, vector.type, scalar), total)

    return accumulator(accumulator, values, weight), codegen


@intrinsic
def multiply_add_pair(typingctx, accumulator, first, first_weight, second, second_weight):
    """Return ``accumulator + fmuladd(first, first_weight, second * second_weight)``.

    That is the scalar ``a += v0 * w0 + v1 * w1`` in every lane.
    """
    if not (isinstance(accumulator, Vector) and first == accumulator and second == accumulator
            and isinstance(first_weight, types.Float) and isinstance(second_weight, types.Float)):
        return None

    def codegen(context, builder, signature, args):
        total, vector0, weight0, vector1, weight1 = args
        weight0 = context.cast(builder, weight0, signature.args[2], accumulator.dtype)
        weight1 = context.cast(builder, weight1, signature.args[4], accumulator.dtype)
        product = builder.fmul(vector1, _splat(builder, vector1.type, weight1))
        return builder.fadd(total, _fmuladd(builder, vector0, _splat(builder, vector0.type, weight0), product))

    return accumulator(accumulator, first, first_weight, second, second_weight), codegen


@intrinsic
def lane(typingctx, vector, index):
    """Return lane ``index`` (0 to LANES - 1, not checked) of ``vector``."""
    if not isinstance(vector, Vector) or not isinstance(index, types.Integer):
        return None

    def codegen(context, builder, signature, args):
        return builder.extract_element(args[0], args[1])

    return vector.dtype(vector, index), codegen
