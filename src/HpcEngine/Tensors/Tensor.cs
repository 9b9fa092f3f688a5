using System.Runtime.CompilerServices;
using HpcEngine.Autograd;

namespace HpcEngine;

/// <summary>An n-dimensional strided view over reference-counted storage, with reverse-mode autodiff.
/// Tensors are <see cref="IDisposable"/>: disposing releases this view's hold on the storage; the memory goes back to
/// the pool when the last view is gone. Inside a <see cref="TensorScope"/>, every tensor created is disposed with the
/// scope unless it is moved out.</summary>
public sealed unsafe partial class Tensor : IDisposable
{
    internal Storage Storage => _storage ?? throw Disposed();
    private Storage? _storage;
    private readonly int[] _shape;
    private readonly int[] _strides;
    private TensorScope? _scope;
    private bool _requiresGrad;

    /// <summary>Offset of element [0, 0, ...] in the storage, in elements.</summary>
    internal int Offset { get; private set; }

    /// <summary>Element type.</summary>
    public DType DType { get; }

    /// <summary>Device holding the storage.</summary>
    public Device Device => _storage?.Device ?? Device.Cpu;

    /// <summary>True when the storage is CPU memory (kernels may take its pointer).</summary>
    internal bool IsCpu => Device.Type == DeviceType.Cpu;

    /// <summary>The backend of the device this tensor lives on: where every op on it computes.</summary>
    internal Backends.IBackend Backend => Backends.DeviceBackends.For(Device);

    /// <summary>Dimensions.</summary>
    public ReadOnlySpan<int> Shape => _shape;

    /// <summary>Element strides per dimension.</summary>
    public ReadOnlySpan<int> Strides => _strides;

    /// <summary>A copy of the shape, for APIs that keep it.</summary>
    public int[] ShapeArray => (int[])_shape.Clone();

    /// <summary>Number of dimensions.</summary>
    public int Rank => _shape.Length;

    /// <summary>Number of elements.</summary>
    public int NumEl { get; }

    /// <summary>Size of dimension <paramref name="dim"/> (negative counts from the end).</summary>
    public int Size(int dim) => _shape[Shapes.NormalizeDim("size", dim, Rank)];

    /// <summary>Accumulated gradient of a leaf after <see cref="Backward"/>.</summary>
    public Tensor? Grad { get; set; }

    /// <summary>The graph node that produced this tensor; null for leaves.</summary>
    public Node? GradFn { get; internal set; }

    /// <summary>True for tensors created by the user rather than by a differentiable op.</summary>
    public bool IsLeaf => GradFn == null;

    /// <summary>Whether gradients flow to or through this tensor. Only leaves may set it.</summary>
    public bool RequiresGrad
    {
        get => _requiresGrad;
        set
        {
            if (!IsLeaf)
                throw new InvalidOperationException(
                    "RequiresGrad can only be changed on a leaf tensor; use Detach() for a non-leaf"
                );
            if (value && !DType.IsFloating())
                throw new DTypeMismatchException(
                    $"only floating-point tensors can require gradients (this one is {DType.TorchName()})"
                );
            _requiresGrad = value;
        }
    }

    /// <summary>An optional name, shown in errors and by modules.</summary>
    public string? Name { get; set; }

    /// <summary>Whether this tensor's storage has been released (using it then throws).</summary>
    public bool IsDisposed => _storage == null;

    internal Tensor(Storage storage, DType dtype, int[] shape, int[] strides, int offset)
    {
        _storage = storage;
        DType = dtype;
        _shape = shape;
        _strides = strides;
        Offset = offset;
        NumEl = Shapes.NumEl(shape);
        TensorScope.Current?.Register(this);
        LiveTensors.OnCreated();
    }

    /// <summary>A new uninitialised contiguous tensor.</summary>
    internal static Tensor Empty(ReadOnlySpan<int> shape, DType dtype, bool zeroed = false)
    {
        var s = shape.ToArray();
        int n = Shapes.NumEl(s);
        return new Tensor(Storage.Allocate((long)n * dtype.SizeOf(), zeroed), dtype, s, Shapes.ContiguousStrides(s), 0);
    }

    /// <summary>A new uninitialised contiguous tensor on <paramref name="device"/>.</summary>
    internal static Tensor Empty(ReadOnlySpan<int> shape, DType dtype, Device device, bool zeroed = false)
    {
        if (device.Type == DeviceType.Cpu)
            return Empty(shape, dtype, zeroed);
        var s = shape.ToArray();
        int n = Shapes.NumEl(s);
        var t = new Tensor(
            Storage.Allocate(device, (long)n * dtype.SizeOf(), zeroed),
            dtype,
            s,
            Shapes.ContiguousStrides(s),
            0
        );
        if (zeroed)
            Backends.DeviceBackends.For(device).Fill(t, 0);
        return t;
    }

    /// <summary>A new view of the same storage (shares memory; counts as one more holder).</summary>
    internal Tensor View(int[] shape, int[] strides, int offset)
    {
        var st = Storage;
        st.AddRef();
        return new Tensor(st, DType, shape, strides, offset);
    }

    /// <summary>Another handle to exactly this view; used where two owners must dispose independently.</summary>
    internal Tensor Alias() => View((int[])_shape.Clone(), (int[])_strides.Clone(), Offset);

    /// <summary>True when elements lie in row-major order with no gaps.</summary>
    public bool IsContiguous
    {
        get
        {
            if (NumEl == 0)
                return true; // no element to be out of place, as in PyTorch
            int expected = 1;
            for (int i = Rank - 1; i >= 0; i--)
            {
                if (_shape[i] != 1 && _strides[i] != expected)
                    return false;
                expected *= _shape[i];
            }
            return true;
        }
    }

    /// <summary>Pointer to element [0, 0, ...].</summary>
    internal T* Ptr<T>()
        where T : unmanaged => (T*)(Storage.Pointer + (long)Offset * DType.SizeOf());

    internal byte* BytePtr => Storage.Pointer + (long)Offset * DType.SizeOf();

    /// <summary>The elements as a span; the tensor must be contiguous.</summary>
    internal Span<T> Span<T>()
        where T : unmanaged
    {
        if (!IsContiguous)
            throw new InvalidOperationException("internal: Span() on a non-contiguous tensor");
        return new Span<T>(Ptr<T>(), NumEl);
    }

    /// <summary>The bytes of a contiguous tensor as Memory (for sockets and other async I/O).</summary>
    internal Memory<byte> AsByteMemory()
    {
        if (!IsContiguous)
            throw new InvalidOperationException("internal: AsByteMemory on a non-contiguous tensor");
        int es = DType.SizeOf();
        return new Memory<byte>(Storage.Bytes, Offset * es, NumEl * es);
    }

    internal int StorageVersion => Storage.Version;

    /// <summary>Moves this very tensor (same object, as a module's parameter must stay) to <paramref name="device"/>:
    /// its values are copied there, it becomes contiguous, and it lets go of its old storage. Its gradient is dropped
    /// (it would be on the old device).</summary>
    internal void MoveStorageTo(Device device)
    {
        CheckAlive();
        if (Device == device)
            return;
        using var moved = Ops.MoveNoGrad(this, device);
        var fresh = moved.Storage;
        fresh.AddRef();
        var old = Interlocked.Exchange(ref _storage, fresh)!;
        old.Release();
        Offset = 0;
        Shapes.ContiguousStrides(_shape).CopyTo(_strides, 0);
        Grad?.Dispose();
        Grad = null;
    }

    internal void BumpVersion() => Storage.Version++;

    internal void SetScope(TensorScope? scope) => _scope = scope;

    internal TensorScope? Scope => _scope;

    /// <summary>Removes this tensor from the scope that would dispose it, so it outlives the scope.</summary>
    public Tensor MoveToOuterScope()
    {
        _scope?.Keep(this);
        return this;
    }

    /// <summary>Removes this tensor from every scope: the caller owns it and disposes it.</summary>
    public Tensor DetachFromScope()
    {
        _scope?.Forget(this);
        return this;
    }

    /// <summary>Releases this view's hold on the storage. Safe to call twice.</summary>
    public void Dispose()
    {
        var s = Interlocked.Exchange(ref _storage, null);
        if (s == null)
            return;
        s.Release();
        LiveTensors.OnDisposed();
        _scope?.Forget(this);
        _scope = null;
    }

    private ObjectDisposedException Disposed() =>
        new(
            nameof(Tensor),
            $"this {DType.TorchName()} tensor of shape {Shapes.Format(_shape)}{(Name != null ? $" ('{Name}')" : "")} was disposed; keep it alive (MoveToOuterScope or no scope) while it is used"
        );

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    internal void CheckAlive()
    {
        if (_storage == null)
            throw Disposed();
    }

    /// <inheritdoc/>
    public override string ToString() => TensorFormat.Format(this);
}

/// <summary>Counts tensors alive in the process (created and not yet disposed): used by tests that check a steady
/// loop releases what it creates, and by pipeline schedules that bound activation memory.</summary>
internal static class LiveTensors
{
    private static long _live;

    /// <summary>Tensor handles created and not disposed.</summary>
    public static long Count => Interlocked.Read(ref _live);

    internal static void OnCreated() => Interlocked.Increment(ref _live);

    internal static void OnDisposed() => Interlocked.Decrement(ref _live);
}
