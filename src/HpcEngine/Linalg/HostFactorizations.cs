namespace HpcEngine.Linalg;

/// <summary>Dense factorisations of square matrices on host arrays, row-major, in float64 whatever the tensor's dtype
/// (what Ops.Linalg.Solve.cs runs after reading its matrices back: not a device kernel, so every backend shares
/// it): LU with partial pivoting (LAPACK's getrf order — the largest pivot in the
/// column, the first of equals), forward/back substitution, and Cholesky–Banachiewicz. O(n³) per matrix.</summary>
internal static class HostFactorizations
{
    /// <summary>Factors <paramref name="a"/> (n×n) in place into L (unit lower, below the diagonal) and U; the row
    /// swapped into place at step k is <paramref name="pivots"/>[k]. Returns the permutation's sign, or 0 when a
    /// pivot is exactly zero (the matrix is singular; the factors are still usable for the determinant).</summary>
    public static int LuFactor(Span<double> a, int n, Span<int> pivots)
    {
        int sign = 1;
        bool singular = false;
        for (int k = 0; k < n; k++)
        {
            int p = k;
            double best = Math.Abs(a[k * n + k]);
            for (int i = k + 1; i < n; i++)
                if (Math.Abs(a[i * n + k]) > best)
                {
                    best = Math.Abs(a[i * n + k]);
                    p = i;
                }
            pivots[k] = p;
            if (p != k)
            {
                for (int j = 0; j < n; j++)
                    (a[k * n + j], a[p * n + j]) = (a[p * n + j], a[k * n + j]);
                sign = -sign;
            }
            double pivot = a[k * n + k];
            if (pivot == 0)
            {
                singular = true;
                continue;
            }
            for (int i = k + 1; i < n; i++)
            {
                double f = a[i * n + k] /= pivot;
                if (f == 0)
                    continue;
                for (int j = k + 1; j < n; j++)
                    a[i * n + j] -= f * a[k * n + j];
            }
        }
        return singular ? 0 : sign;
    }

    /// <summary>Solves A·X = B in place in <paramref name="b"/> (n×m) from A's LU factors.</summary>
    public static void LuSolve(ReadOnlySpan<double> lu, ReadOnlySpan<int> pivots, int n, Span<double> b, int m)
    {
        for (int k = 0; k < n; k++)
            if (pivots[k] != k)
                for (int j = 0; j < m; j++)
                    (b[k * m + j], b[pivots[k] * m + j]) = (b[pivots[k] * m + j], b[k * m + j]);
        for (int i = 0; i < n; i++) // L·Y = P·B, unit diagonal
        for (int k = 0; k < i; k++)
        {
            double f = lu[i * n + k];
            if (f != 0)
                for (int j = 0; j < m; j++)
                    b[i * m + j] -= f * b[k * m + j];
        }
        for (int i = n - 1; i >= 0; i--) // U·X = Y
        {
            for (int k = i + 1; k < n; k++)
            {
                double f = lu[i * n + k];
                if (f != 0)
                    for (int j = 0; j < m; j++)
                        b[i * m + j] -= f * b[k * m + j];
            }
            double d = lu[i * n + i];
            for (int j = 0; j < m; j++)
                b[i * m + j] /= d;
        }
    }

    /// <summary>The determinant from LU factors and the permutation's sign.</summary>
    public static double Det(ReadOnlySpan<double> lu, int n, int sign)
    {
        if (sign == 0)
            return 0;
        double d = sign;
        for (int i = 0; i < n; i++)
            d *= lu[i * n + i];
        return d;
    }

    /// <summary>Replaces <paramref name="a"/> (n×n, its lower triangle read) by L with A = L·Lᵀ, the upper triangle
    /// zeroed. Returns 0, or the order k of the first leading minor that is not positive definite (LAPACK's
    /// info).</summary>
    public static int Cholesky(Span<double> a, int n)
    {
        for (int j = 0; j < n; j++)
        {
            double d = a[j * n + j];
            for (int k = 0; k < j; k++)
                d -= a[j * n + k] * a[j * n + k];
            if (!(d > 0))
                return j + 1;
            double ljj = Math.Sqrt(d);
            a[j * n + j] = ljj;
            for (int i = j + 1; i < n; i++)
            {
                double s = a[i * n + j];
                for (int k = 0; k < j; k++)
                    s -= a[i * n + k] * a[j * n + k];
                a[i * n + j] = s / ljj;
            }
            for (int k = j + 1; k < n; k++)
                a[j * n + k] = 0;
        }
        return 0;
    }
}
