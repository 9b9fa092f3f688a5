namespace HpcEngine.Training;

/// <summary>Where a run starts: fresh, or from a checkpoint whose fingerprint matches this run's (or differs only in
/// the changes the user accepted, with the data position and schedule rescaled for a new world size).</summary>
internal sealed record ResumePoint(int Epoch, int Skip, long Step, TrainingState? State, string? Directory)
{
    private static readonly ResumePoint Fresh = new(0, 0, 0, null, null);

    /// <param name="config">The run.</param>
    /// <param name="now">This run's fingerprint (computed only when a checkpoint is read).</param>
    /// <param name="canResize">Whether the strategy keeps no per-rank state, so a new world size can take over.</param>
    /// <param name="batchesPerEpoch">Batches per rank and epoch at this run's world size.</param>
    /// <param name="stepsPerEpoch">Optimizer steps per epoch at this run's world size.</param>
    /// <param name="log">Where the decisions are said.</param>
    public static ResumePoint Plan(
        TrainConfig config,
        Func<RunFingerprint> now,
        bool canResize,
        int batchesPerEpoch,
        long stepsPerEpoch,
        Action<string> log
    )
    {
        string? dir = config.ResumeFrom ?? (config.Resume || config.ResumeIfExists ? config.CheckpointDir : null);
        if (dir == null)
            return Fresh;
        var st = Checkpoint.ReadState(dir);
        if (st == null)
        {
            if (config.ResumeIfExists)
            {
                log($"no checkpoint in {dir} yet: starting fresh");
                return Fresh;
            }
            throw new TrainConfigException(
                config.ResumeFrom != null ? nameof(config.ResumeFrom) : nameof(config.Resume),
                $"{(config.ResumeFrom != null ? "{ResumeFrom}" : "{Resume}")}: nothing to resume in {dir} (no {Checkpoint.PointerFile}); start without it, or use {{ResumeIfExists}} in restart loops"
            );
        }
        if (st.Fingerprint == null)
        {
            log(
                $"warning: the checkpoint in {dir} has no run fingerprint (written by an older HpcEngine): its "
                    + $"settings cannot be checked against this run's"
            );
            return new ResumePoint(st.Epoch, st.BatchInEpoch, st.Step, st, dir);
        }
        var saved = RunFingerprint.FromJson(st.Fingerprint);
        var current = now();
        var diffs = saved.Differences(current);
        var refused = diffs.Where(d => !config.AllowResumeChanges.Contains(d.Field)).ToList();
        if (refused.Count > 0)
        {
            var acceptable = refused.Where(d => ResumeChange.All.Contains(d.Field)).Select(d => d.Field).ToList();
            throw new TrainConfigException(
                nameof(config.Resume),
                $"{{Resume}}: the checkpoint in {dir} was written by a different run: {string.Join("; ", refused.Select(d => $"{d.Field} was {d.Saved}, now {d.Now}"))}. "
                    + "Resume with the checkpoint's settings"
                    + (
                        acceptable.Count > 0
                            ? $", or accept the change with {{AllowResumeChanges}} {string.Join(",", acceptable)}"
                            : ""
                    )
                    + ", or start a new run in another {CheckpointDir}"
            );
        }
        int epoch = st.Epoch,
            skip = st.BatchInEpoch;
        long step = st.Step;
        foreach (var (field, was, isNow) in diffs)
        {
            if (field == ResumeChange.Epochs)
                log($"resume: epochs {was} -> {isNow} (accepted): the cosine schedule now spans {isNow} epochs");
            if (field == ResumeChange.WorldSize)
            {
                if (!canResize)
                    throw new TrainConfigException(
                        nameof(config.AllowResumeChanges),
                        $"{{AllowResumeChanges}} world-size: {{Strategy}} {config.Strategy}{(config.Compress != null ? $" with {{Compress}} {config.Compress}" : "")} keeps per-rank state (shards, residuals, outer optimizers) for {was} ranks; resume it on {was} ranks"
                    );
                // The samples this epoch has consumed so far are the head of the epoch's permutation at any world
                // size: start the new ranks at the batch that covers as many (at most one global batch is seen again).
                long seen = (long)st.BatchInEpoch * saved.BatchSize * saved.WorldSize;
                skip = (int)(seen / ((long)current.BatchSize * current.WorldSize));
                if (skip >= batchesPerEpoch)
                    (epoch, skip) = (epoch + 1, 0);
                step = epoch * stepsPerEpoch + skip / config.GradAccumulation;
                log(
                    $"resume: world size {was} -> {isNow} (accepted): {seen} samples of epoch {epoch + 1} were seen; "
                        + $"continuing at batch {skip} "
                        + $"({seen - (long)skip * current.BatchSize * current.WorldSize} of them again), the schedule at step {step} of {stepsPerEpoch * config.Epochs}"
                );
            }
        }
        return new ResumePoint(epoch, skip, step, st, dir);
    }
}
