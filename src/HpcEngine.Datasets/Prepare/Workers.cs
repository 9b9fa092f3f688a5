using System.Runtime.ExceptionServices;

namespace HpcEngine.Datasets.Prepare;

/// <summary>A parallel loop over a bounded number of threads that fails with the first error itself (not an
/// AggregateException), so the caller's typed errors reach the user as they were thrown.</summary>
internal static class Workers
{
    public static void For(int count, int workers, Action<int> body)
    {
        try
        {
            System.Threading.Tasks.Parallel.For(
                0,
                count,
                new ParallelOptions { MaxDegreeOfParallelism = workers },
                body
            );
        }
        catch (AggregateException e) when (e.InnerExceptions.Count > 0)
        {
            ExceptionDispatchInfo.Capture(e.InnerExceptions[0]).Throw();
            throw; // unreachable
        }
    }
}
