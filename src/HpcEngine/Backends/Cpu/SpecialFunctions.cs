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

    /// <summary>The inverse error function to double precision: Giles' single-precision polynomials ("Approximating
    /// the erfinv function", GPU Computing Gems, 2011) as the start, then Newton steps on erf(x) = y (each doubles the
    /// correct digits). ±1 give ±∞; outside [−1, 1], NaN.</summary>
    public static double Erfinv(double y)
    {
        if (double.IsNaN(y) || Math.Abs(y) > 1)
            return double.NaN;
        if (Math.Abs(y) == 1)
            return y * double.PositiveInfinity;
        double w = -Math.Log((1 - y) * (1 + y)),
            p;
        if (w < 5)
        {
            w -= 2.5;
            p = 2.81022636e-08;
            foreach (
                double c in (double[])
                    [
                        3.43273939e-07,
                        -3.5233877e-06,
                        -4.39150654e-06,
                        0.00021858087,
                        -0.00125372503,
                        -0.00417768164,
                        0.246640727,
                        1.50140941,
                    ]
            )
                p = c + p * w;
        }
        else
        {
            w = Math.Sqrt(w) - 3;
            p = -0.000200214257;
            foreach (
                double c in (double[])
                    [
                        0.000100950558,
                        0.00134934322,
                        -0.00367342844,
                        0.00573950773,
                        -0.0076224613,
                        0.00943887047,
                        1.00167406,
                        2.83297682,
                    ]
            )
                p = c + p * w;
        }
        double x = p * y;
        for (int i = 0; i < 3; i++)
        {
            double slope = 2 / Math.Sqrt(Math.PI) * Math.Exp(-x * x);
            if (slope == 0)
                break;
            x -= (Erf(x) - y) / slope;
        }
        return x;
    }
}
