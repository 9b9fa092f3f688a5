namespace HpcEngine.Backends.Cpu;

/// <summary>The one driver behind every elementwise kernel: walks up to three operands that share a (broadcast)
/// shape but have their own strides, calling a row body with each operand's offset of the row and the row's length.
/// Dimensions that are contiguous across all operands are merged first, so a contiguous tensor is one long row and
/// kernels see long, SIMD-friendly runs; rows are split across threads for large work.</summary>
internal sealed class StridedLoop
{
    /// <summary>Row body: offsets (in elements) of the row's first element for operands 0..2, and its length.</summary>
    public delegate void Row(int o0, int o1, int o2, int n);

    private readonly int[] _outerShape;
    private readonly int[][] _outerStrides;
    public int Inner { get; }
    public int Stride0 { get; }
    public int Stride1 { get; }
    public int Stride2 { get; }
    public int Rows { get; }

    public StridedLoop(ReadOnlySpan<int> shape, int[] s0, int[]? s1 = null, int[]? s2 = null)
    {
        int nOps =
            s2 != null ? 3
            : s1 != null ? 2
            : 1;
        var strides = new[] { s0, s1 ?? new int[shape.Length], s2 ?? new int[shape.Length] };
        // Drop size-1 dims, then merge dim i into dim i+1 where every operand is contiguous across the pair.
        var dims = new List<int>();
        var st = new List<int[]>();
        for (int d = 0; d < shape.Length; d++)
        {
            if (shape[d] == 1)
                continue;
            dims.Add(shape[d]);
            st.Add([strides[0][d], strides[1][d], strides[2][d]]);
        }
        if (shape.Length > 0 && Shapes.NumEl(shape) == 0)
        {
            dims.Clear();
            st.Clear();
            dims.Add(0);
            st.Add([1, 1, 1]);
        }
        for (int i = dims.Count - 2; i >= 0; i--)
        {
            bool merge = true;
            for (int k = 0; k < nOps; k++)
                if (st[i][k] != st[i + 1][k] * dims[i + 1])
                {
                    merge = false;
                    break;
                }
            if (!merge)
                continue;
            dims[i] *= dims[i + 1];
            st[i] = st[i + 1];
            dims.RemoveAt(i + 1);
            st.RemoveAt(i + 1);
        }
        if (dims.Count == 0)
        {
            dims.Add(1);
            st.Add([1, 1, 1]);
        }
        int last = dims.Count - 1;
        Inner = dims[last];
        Stride0 = st[last][0];
        Stride1 = st[last][1];
        Stride2 = st[last][2];
        _outerShape = dims.Take(last).ToArray();
        _outerStrides = [.. Enumerable.Range(0, 3).Select(k => st.Take(last).Select(x => x[k]).ToArray())];
        int rows = 1;
        foreach (int d in _outerShape)
            rows *= d;
        Rows = Inner == 0 ? 0 : rows;
    }

    /// <summary>Calls <paramref name="row"/> for every row, in parallel for large work. When there are fewer rows
    /// than threads the inner run itself is split.</summary>
    public void Run(Row row, int base0 = 0, int base1 = 0, int base2 = 0)
    {
        if (Rows == 0)
            return;
        long work = (long)Rows * Inner;
        if (Rows == 1)
        {
            CpuThreads.For(Inner, work, (s, e) =>
                row(base0 + s * Stride0, base1 + s * Stride1, base2 + s * Stride2, e - s)
            );
            return;
        }
        CpuThreads.For(Rows, work, (start, end) =>
        {
            int nd = _outerShape.Length;
            Span<int> idx = stackalloc int[nd];
            int r = start;
            for (int d = nd - 1; d >= 0; d--)
            {
                idx[d] = r % _outerShape[d];
                r /= _outerShape[d];
            }
            int o0 = base0,
                o1 = base1,
                o2 = base2;
            for (int d = 0; d < nd; d++)
            {
                o0 += idx[d] * _outerStrides[0][d];
                o1 += idx[d] * _outerStrides[1][d];
                o2 += idx[d] * _outerStrides[2][d];
            }
            for (int i = start; i < end; i++)
            {
                row(o0, o1, o2, Inner);
                // odometer increment
                for (int d = nd - 1; d >= 0; d--)
                {
                    idx[d]++;
                    o0 += _outerStrides[0][d];
                    o1 += _outerStrides[1][d];
                    o2 += _outerStrides[2][d];
                    if (idx[d] < _outerShape[d])
                        break;
                    o0 -= idx[d] * _outerStrides[0][d];
                    o1 -= idx[d] * _outerStrides[1][d];
                    o2 -= idx[d] * _outerStrides[2][d];
                    idx[d] = 0;
                }
            }
        });
    }
}
