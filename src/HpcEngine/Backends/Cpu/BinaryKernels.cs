using System.Numerics;
using static HpcEngine.Backends.Cpu.ArithmeticOperators;

namespace HpcEngine.Backends.Cpu;

/// <summary>Broadcast binary arithmetic: picks the operator struct once per call; <see cref="BinaryDriver"/> does
/// the walking (SIMD rows through TensorPrimitives where the strides allow, else the operator's scalar rule).</summary>
internal static class BinaryKernels
{
    public static void Run<T>(BinaryOp op, Tensor a, Tensor b, Tensor dst)
        where T : unmanaged, INumber<T>
    {
        switch (op)
        {
            case BinaryOp.Add:
                BinaryDriver.Run<T, T, Add<T>>(a, b, dst);
                break;
            case BinaryOp.Sub:
                BinaryDriver.Run<T, T, Sub<T>>(a, b, dst);
                break;
            case BinaryOp.Mul:
                BinaryDriver.Run<T, T, Mul<T>>(a, b, dst);
                break;
            case BinaryOp.Div:
                BinaryDriver.Run<T, T, Div<T>>(a, b, dst);
                break;
            case BinaryOp.Maximum:
                BinaryDriver.Run<T, T, Maximum<T>>(a, b, dst);
                break;
            case BinaryOp.Minimum:
                BinaryDriver.Run<T, T, Minimum<T>>(a, b, dst);
                break;
            case BinaryOp.Pow:
                BinaryDriver.Run<T, T, Pow<T>>(a, b, dst);
                break;
            case BinaryOp.Atan2:
                BinaryDriver.Run<T, T, Atan2<T>>(a, b, dst);
                break;
            case BinaryOp.Fmod:
                BinaryDriver.Run<T, T, Fmod<T>>(a, b, dst);
                break;
            case BinaryOp.Remainder:
                BinaryDriver.Run<T, T, Remainder<T>>(a, b, dst);
                break;
            case BinaryOp.CopySign:
                BinaryDriver.Run<T, T, CopySign<T>>(a, b, dst);
                break;
            default:
                throw new ArgumentOutOfRangeException(nameof(op), op, "not a binary arithmetic op");
        }
    }
}
