using System.Diagnostics;
using System.Threading.Channels;

namespace HpcEngine.Serving;

/// <summary>Coalesces concurrent inference requests into batches, as Triton's dynamic batcher does: the first request
/// opens a batch, which closes when it holds <see cref="MaxBatch"/> samples, when <see cref="MaxDelay"/> has passed,
/// or as soon as the queue is empty and no request is on its way in (see <see cref="Arrive"/>) — waiting then would
/// only add latency, and under a closed loop of C clients it would stall every batch for the whole delay, since the
/// clients all wait on the batch. The batch runs as one forward pass on one thread and each request gets its own rows
/// back. A request larger than the
/// batch runs alone. The model is read from <see cref="ModelStore"/> at the start of each batch, so a hot reload
/// takes effect between batches and a batch never mixes models.</summary>
public sealed class DynamicBatcher : IAsyncDisposable
{
    private sealed record Pending(
        float[] Inputs,
        int Count,
        TaskCompletionSource<(ServedModel Model, float[] Logits)> Done
    );

    private readonly Channel<Pending> _queue = Channel.CreateUnbounded<Pending>(
        new UnboundedChannelOptions { SingleReader = true }
    );
    private readonly ModelStore _models;
    private readonly ServeMetrics _metrics;
    private readonly Task _loop;
    private int _arriving;

    /// <summary>The most samples one forward pass takes.</summary>
    public int MaxBatch { get; }

    /// <summary>How long a batch waits for more requests after its first.</summary>
    public TimeSpan MaxDelay { get; }

    /// <summary>A batcher over the store's current model.</summary>
    public DynamicBatcher(ModelStore models, ServeMetrics metrics, int maxBatch, TimeSpan maxDelay)
    {
        ArgumentNullException.ThrowIfNull(models);
        ArgumentNullException.ThrowIfNull(metrics);
        ArgumentOutOfRangeException.ThrowIfLessThan(maxBatch, 1);
        _models = models;
        _metrics = metrics;
        MaxBatch = maxBatch;
        MaxDelay = maxDelay;
        _loop = Task
            .Factory.StartNew(Loop, CancellationToken.None, TaskCreationOptions.LongRunning, TaskScheduler.Default)
            .Unwrap();
    }

    /// <summary>Marks a request on its way in (its body being read and parsed) until the returned scope is disposed:
    /// an open batch waits for it (up to the delay) rather than closing. Queue the request with
    /// <see cref="InferAsync"/> before disposing the scope, so the batch never sees neither. An arrival that ends
    /// without a request (a refused body) leaves an open batch waiting out the rest of its delay, no longer.</summary>
    public ArrivalScope Arrive()
    {
        Interlocked.Increment(ref _arriving);
        return new ArrivalScope(this);
    }

    /// <summary>A request on its way in; disposing it ends the arrival.</summary>
    public readonly struct ArrivalScope(DynamicBatcher batcher) : IDisposable
    {
        /// <inheritdoc/>
        public void Dispose() => Interlocked.Decrement(ref batcher._arriving);
    }

    /// <summary>Queues <paramref name="count"/> samples (row-major, as the model takes them) and returns the model that
    /// ran them and their logits.</summary>
    public Task<(ServedModel Model, float[] Logits)> InferAsync(float[] inputs, int count)
    {
        var done = new TaskCompletionSource<(ServedModel, float[])>(TaskCreationOptions.RunContinuationsAsynchronously);
        if (!_queue.Writer.TryWrite(new Pending(inputs, count, done)))
            done.SetException(new ObjectDisposedException(nameof(DynamicBatcher), "the server is shutting down"));
        return done.Task;
    }

    private async Task Loop()
    {
        var reader = _queue.Reader;
        var batch = new List<Pending>();
        Pending? carried = null;
        while (carried != null || await reader.WaitToReadAsync().ConfigureAwait(false))
        {
            batch.Clear();
            int samples = 0;
            if (carried != null)
            {
                batch.Add(carried);
                samples = carried.Count;
                carried = null;
            }
            else if (reader.TryRead(out var first))
            {
                batch.Add(first);
                samples = first.Count;
            }
            var deadline = Stopwatch.StartNew();
            while (samples < MaxBatch)
            {
                if (reader.TryRead(out var next))
                {
                    if (samples + next.Count > MaxBatch)
                    {
                        carried = next; // opens the next batch
                        break;
                    }
                    batch.Add(next);
                    samples += next.Count;
                    continue;
                }
                var left = MaxDelay - deadline.Elapsed;
                if (left <= TimeSpan.Zero || Volatile.Read(ref _arriving) == 0)
                    break;
                using var wait = new CancellationTokenSource(left);
                try
                {
                    if (!await reader.WaitToReadAsync(wait.Token).ConfigureAwait(false))
                        break;
                }
                catch (OperationCanceledException)
                {
                    break;
                }
            }
            if (batch.Count > 0)
                Run(batch, samples);
        }
    }

    private void Run(List<Pending> batch, int samples)
    {
        var model = _models.Acquire();
        try
        {
            int size = model.SampleSize;
            var inputs = new float[samples * size];
            int at = 0;
            foreach (var p in batch)
            {
                p.Inputs.AsSpan(0, p.Count * size).CopyTo(inputs.AsSpan(at * size));
                at += p.Count;
            }
            var clock = Stopwatch.StartNew();
            var logits = model.Forward(inputs, samples);
            _metrics.Batch(samples, clock.Elapsed.TotalSeconds);
            int k = model.Input.Classes;
            at = 0;
            foreach (var p in batch)
            {
                p.Done.SetResult((model, logits.AsSpan(at * k, p.Count * k).ToArray()));
                at += p.Count;
            }
        }
        catch (Exception e)
        {
            foreach (var p in batch)
                p.Done.TrySetException(e);
        }
        finally
        {
            _models.Release(model);
        }
    }

    /// <summary>Stops taking requests, answers those queued, and ends the loop.</summary>
    public async ValueTask DisposeAsync()
    {
        _queue.Writer.TryComplete();
        await _loop.ConfigureAwait(false);
    }
}
