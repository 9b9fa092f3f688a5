namespace HpcEngine.Backends.Cpu;

/// <summary>Functions .NET's Math lacks.</summary>
internal static class SpecialFunctions
{
    /// <summary>The error function to double precision. For |x| &lt; 6 it sums the series
    /// erf(x) = 2/sqrt(pi) * exp(-x^2) * sum_n 2^n x^(2n+1) / (1*3*...*(2n+1)), whose terms are all positive (no
    /// cancellation); beyond 6, erf is +-1 in double precision.</summary>
    public static double Erf(double x)
    {
        if (double.IsNaN(x))
            return double.NaN;
        double ax = Math.Abs(x);
        if (ax >= 6)
            return Math.Sign(x);
        double term = ax,
            sum = ax,
            x2 = ax * ax;
        for (int n = 1; n < 200; n++)
        {
            term *= 2 * x2 / (2 * n + 1);
            sum += term;
            if (term < 1e-17 * sum)
                break;
        }
        double r = 2 / Math.Sqrt(Math.PI) * Math.Exp(-x2) * sum;
        return x < 0 ? -r : r;
    }
}
