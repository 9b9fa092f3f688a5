using System.Numerics;

namespace HpcEngine.Backends.Cpu;

/// <summary>Row sorts of a contiguous [rows, n] matrix: every row's (value, index) pairs sorted under a total order —
/// NaN above every number, equal values by index — so an unstable sort gives the stable result PyTorch's
/// <c>stable=True</c> promises, in either direction. Rows across threads.</summary>
internal static unsafe class SortKernels
{
    private struct Entry<T>
    {
        public T Value;
        public long Index;
    }

    private readonly struct Order<T>(bool descending) : IComparer<Entry<T>>
        where T : INumber<T>
    {
        public int Compare(Entry<T> a, Entry<T> b)
        {
            bool an = T.IsNaN(a.Value),
                bn = T.IsNaN(b.Value);
            if (an != bn)
                return an == descending ? -1 : 1; // NaN is the largest: last ascending, first descending
            if (!an && a.Value != b.Value)
                return (a.Value < b.Value) != descending ? -1 : 1;
            return a.Index.CompareTo(b.Index);
        }
    }

    /// <summary>values[r, :] and indices[r, :] := row r of x in order, with each value's position in the row.</summary>
    public static void SortRows<T>(T* x, T* values, long* indices, int rows, int n, bool descending)
        where T : unmanaged, INumber<T>
    {
        if (rows == 0 || n == 0)
            return;
        CpuThreads.For(rows, (long)rows * n * Math.Max(1, BitOperations.Log2((uint)n)), (s, e) =>
        {
            var entries = new Entry<T>[n];
            for (int r = s; r < e; r++)
            {
                long row = (long)r * n;
                for (int k = 0; k < n; k++)
                    entries[k] = new Entry<T> { Value = x[row + k], Index = k };
                entries.AsSpan().Sort(new Order<T>(descending));
                for (int k = 0; k < n; k++)
                {
                    values[row + k] = entries[k].Value;
                    indices[row + k] = entries[k].Index;
                }
            }
        });
    }
}
