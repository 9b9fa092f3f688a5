using System.Text.Json;
using HpcEngine.Data;
using HpcEngine.Parallel;

namespace HpcEngine.Training;

/// <summary>A run's checkpoints: where it writes them and how it continues from one. Every rank writes its own
/// strategy state (codec residuals, outer optimizer, shard optimizer), then rank 0 writes the model and its optimizer
/// and switches checkpoint.json — after a barrier, so the pointer never names a step whose per-rank files are not all
/// on disk.</summary>
internal sealed class CheckpointWriter(TrainingRun run, Dataset train)
{
    private readonly string _configJson = JsonSerializer.Serialize(run.Config);

    // The fingerprint hashes the training set: computed only where checkpoints are written or read.
    private readonly Lazy<RunFingerprint> _fingerprint = new(() => RunFingerprint.Of(run.Config, run.Workers, train));
    private readonly ModelInput _input = ModelInput.Of(train);
    private long _savedAt = -1;

    public RunFingerprint Fingerprint => _fingerprint.Value;

    /// <summary>The last checkpoint rank 0 wrote (null: none).</summary>
    public string? LastPath { get; private set; }

    /// <summary>Whether a strategy keeps per-rank state beyond the model: all but sync without a codec.</summary>
    public static bool HasRankState(ITrainingStrategy strategy) =>
        strategy is not SyncStrategy sync || sync.Ddp.Codec != null;

    /// <summary>Checkpoints at optimizer step <paramref name="step"/>, to continue at batch <paramref name="batch"/> of
    /// epoch <paramref name="epoch"/> (0-based); once per step, and only when the run has a checkpoint
    /// directory.</summary>
    public void Save(long step, int epoch, int batch)
    {
        var dir = run.Config.CheckpointDir;
        if (dir == null || _savedAt == step)
            return;
        _savedAt = step;
        if (run.Strategy is { } strategy && HasRankState(strategy))
        {
            var (tensors, scalars) = strategy.StateDict();
            try
            {
                Checkpoint.SaveRankState(dir, run.Rank, step, tensors, scalars);
            }
            finally
            {
                foreach (var t in tensors.Values)
                    t.Dispose();
            }
            run.Group!.Barrier().Wait();
        }
        if (run.Lead)
        {
            var gen = run.Generator;
            LastPath = Checkpoint.Save(
                dir,
                run.Model,
                run.Optimizer,
                new TrainingState(epoch, batch, step, gen.Seed, gen.Offset, _configJson, Fingerprint.ToJson()),
                _input
            );
        }
    }

    /// <summary>Saves after the batch at 0-based <paramref name="batchIndex"/> of <paramref name="epoch"/>: the run
    /// continues at the next batch, or at the next epoch after the last.</summary>
    public void SaveAfter(long step, int epoch, int batchIndex)
    {
        bool lastBatch = batchIndex + 1 >= run.Loader.BatchesPerEpoch;
        Save(step, lastBatch ? epoch + 1 : epoch, lastBatch ? 0 : batchIndex + 1);
    }

    /// <summary>Loads the model, the optimizer, this rank's strategy state and the generator's position from the
    /// checkpoint <paramref name="start"/> names.</summary>
    public void Restore(ResumePoint start)
    {
        var saved = start.State!;
        Checkpoint.Load(start.Directory!, run.Model, run.Optimizer);
        if (run.Strategy is { } strategy && HasRankState(strategy))
        {
            var (tensors, scalars) = Checkpoint.LoadRankState(start.Directory!, run.Rank, saved.Step);
            try
            {
                strategy.LoadStateDict(tensors, scalars);
            }
            finally
            {
                foreach (var t in tensors.Values)
                    t.Dispose();
            }
        }
        run.Generator.ManualSeed(saved.RngSeed);
        run.Generator.Offset = saved.RngOffset;
        run.Observers.Message(
            $"resumed from {start.Directory} at epoch {start.Epoch + 1}, batch {start.Skip}, step {start.Step}"
        );
    }
}
