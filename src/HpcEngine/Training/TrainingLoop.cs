using System.Diagnostics;
using HpcEngine.Data;
using HpcEngine.NN;
using HpcEngine.Optim;

namespace HpcEngine.Training;

/// <summary>The training loop: epochs of batches, each a forward and backward, then (every
/// <see cref="TrainConfig.GradAccumulation"/> batches) an optimizer or strategy step; evaluation and checkpoints at
/// the points the config names; the run's events to its observers.</summary>
internal sealed class TrainingLoop(TrainingRun run, Dataset test)
{
    private readonly TrainConfig _config = run.Config;
    private readonly Stopwatch _clock = Stopwatch.StartNew();
    private readonly Stopwatch _sinceProgress = Stopwatch.StartNew();
    private readonly List<EpochResult> _epochs = new();
    private readonly List<double> _losses = new();
    private Evaluation _evaluation = null!;
    private long _step,
        _workerSteps,
        _samples;
    private double _computeSeconds;
    private bool _stopped;
    private readonly ElasticTraining? _elastic = run.Elastic != null ? new ElasticTraining(run) : null;
    private bool _left;

    /// <summary>This member leaves the job: the others re-form without waiting for it. Its result is what it trained
    /// up to here; it takes part in no further collective (no final evaluation, no metrics gathering).</summary>
    private TrainResult Left(string dataSource, double trainSeconds)
    {
        run.Elastic!.Leave();
        run.Observers.All(o => o.OnMessage($"elastic: member {run.Elastic.MemberId} left the job after step {_step}"));
        return new TrainResult(
            _config,
            dataSource,
            _epochs,
            _losses,
            double.NaN,
            _evaluation.Best,
            trainSeconds,
            _samples / Math.Max(trainSeconds, 1e-9),
            _step,
            run.Checkpoints.LastPath,
            _evaluation.Curve,
            RunMetrics.Single(_computeSeconds)
        )
        {
            Left = true,
        };
    }

    public TrainResult Run(string dataSource)
    {
        _evaluation = new Evaluation(run, test, _clock);
        _step = run.Start.Step;
        long bytesAtStart = run.Group?.BytesSent ?? 0;
        double last = double.NaN;
        if (run.Server is { IsWorker: false } server)
        {
            // A server rank is never rank 0: its own observers hear of it.
            run.Observers.All(o =>
                o.OnMessage($"rank {run.Rank}: dedicated parameter server for {server.Workers} workers")
            );
            _stopped = true;
            server.ServeUntilDone();
        }
        using var graphed = _config.CudaGraph ? new GraphedTraining(run) : null;
        int firstEpoch = run.Start.Epoch;
        int? joinedAt = null;
        if (run.Elastic is { AwaitsState: true })
        {
            // A joiner: the job's state and position come from rank 0.
            (firstEpoch, int position, _step) = _elastic!.ReceiveState();
            joinedAt = position;
        }
        else
            _elastic?.Begin(firstEpoch, run.Start.Skip * _config.BatchSize * run.Workers, _step);
        for (int epoch = firstEpoch; epoch < _config.Epochs && !_stopped; epoch++)
        {
            var epochResult = Epoch(
                epoch,
                epoch == run.Start.Epoch ? run.Start.Skip : 0,
                graphed,
                epoch == firstEpoch ? joinedAt : null
            );
            if (epochResult == null)
                break;
            last = epochResult.TestAccuracy;
        }
        double trainSeconds = _clock.Elapsed.TotalSeconds - _evaluation.Seconds;
        if (_left)
            return Left(dataSource, trainSeconds);
        var metrics = RunMetrics.Single(_computeSeconds);
        if (run.Strategy is { } strategy && run.Group is { } group)
        {
            // A parameter server's replicas hold what they last pulled: gather the final shards and evaluate those.
            strategy.Finish();
            if (run.Server is { IsWorker: true } && run.Lead)
                last = _evaluation.At(_step);
            metrics = RunMetrics.Gather(
                group,
                strategy,
                _config.CodecName,
                _computeSeconds,
                group.BytesSent + run.BytesOfPastGenerations - bytesAtStart,
                _workerSteps,
                run.SecondsOfPastGenerations
            );
        }
        // A run that stopped between evaluations (MaxSteps), or resumed an already finished one, evaluates where it
        // stands (after the strategy's final exchange): the reported accuracy is always measured, never a placeholder.
        if (_evaluation.LastStep != _step && run.Server == null && _evaluation.TakesPart)
            last = _evaluation.At(_step);
        var elasticReport = _elastic?.Report(_config.Epochs - run.Start.Epoch);
        return new TrainResult(
            _config,
            dataSource,
            _epochs,
            _losses,
            last,
            _evaluation.Best,
            trainSeconds,
            _samples * run.Workers / Math.Max(trainSeconds, 1e-9),
            _step,
            run.Checkpoints.LastPath,
            _evaluation.Curve,
            metrics
        )
        {
            Elastic = elasticReport,
        };
    }

    /// <summary>One epoch from batch <paramref name="skip"/>; null when the run stopped within it (MaxSteps).</summary>
    private EpochResult? Epoch(int epoch, int skip, GraphedTraining? graphed, int? startPosition = null)
    {
        run.Model.Train();
        var timer = Stopwatch.StartNew();
        double lossSum = 0,
            evaluationBefore = _evaluation.Seconds;
        int lossCount = 0,
            micro = 0,
            epochSamples = 0,
            batches = run.Loader.BatchesPerEpoch;
        // Elastic runs follow the epoch by global position (samples all ranks consumed), which survives a change of
        // world size; the others by batch index.
        int position = startPosition ?? skip * _config.BatchSize * run.Workers;
        Exception? lost = null;
        double acc = double.NaN;
        bool recovered = false,
            rejoin = false;
        while (true)
        {
            if (lost != null)
            {
                position = _elastic!.Recover(epoch, out _step);
                lost = null;
                recovered = true;
                if (position >= run.Loader.DatasetSize)
                    break; // the epoch was complete on the new rank 0: only its evaluation is left
            }
            var pass = run.Elastic == null ? run.Loader.Epoch(epoch, skip) : run.Loader.Epoch(epoch, 0, position);
            foreach (var batch in pass)
            {
                using (batch)
                using (var scope = new TensorScope())
                    try
                    {
                        long computeStart = Stopwatch.GetTimestamp();
                        bool isGraphed = graphed != null && batch.Size == _config.BatchSize; // a short last batch runs eagerly
                        bool stepNow = isGraphed || ++micro >= _config.GradAccumulation || batch.Index == batches - 1;
                        double loss = isGraphed ? graphed!.Step(batch, _step) : ForwardBackward(batch, stepNow);
                        if (!double.IsFinite(loss) && !_config.AllowDivergence)
                            throw new TrainingDivergedException(_step + 1, epoch + 1, batch.Index + 1, loss);
                        var computed = new ComputeEvent(
                            _step,
                            computeStart,
                            Stopwatch.GetElapsedTime(computeStart).TotalSeconds
                        );
                        run.Observers.All(o => o.OnComputed(computed));
                        // with what observers added (a straggler)
                        _computeSeconds += Stopwatch.GetElapsedTime(computeStart).TotalSeconds;
                        lossSum += loss;
                        lossCount++;
                        epochSamples += batch.Size;
                        if (!stepNow)
                            continue;
                        micro = 0;
                        if (!isGraphed)
                            OptimizerStep();
                        _step++;
                        _workerSteps++;
                        _losses.Add(loss);
                        var stepEvent = new StepEvent(_step, epoch + 1, batch.Index + 1, loss);
                        run.Observers.All(o => o.OnStep(stepEvent));
                        if (_config.EvalEverySteps > 0 && _step % _config.EvalEverySteps == 0 && _evaluation.TakesPart)
                            _evaluation.At(_step);
                        if (_config.SaveEverySteps > 0 && _step % _config.SaveEverySteps == 0)
                            run.Checkpoints.SaveAfter(_step, epoch, batch.Index);
                        position += batch.Size * run.Workers;
                        _elastic?.Stepped(epoch, position, _step, batch.Size * run.Workers);
                        // Joiners enter at a step boundary inside an epoch (never at its end, where rank 0 evaluates).
                        if (
                            _elastic != null
                            && _elastic.JoinCheckDue(_step)
                            && position < run.Loader.DatasetSize
                            && _elastic.AdmitJoiners(epoch, position, _step)
                        )
                        {
                            lost = null;
                            rejoin = true;
                            break;
                        }
                        if (run.Elastic is { LeaveRequested: true } && run.Strategy is not { StepCommitted: false })
                        {
                            // Preempted (SIGTERM): the step is committed everywhere (under local SGD, DiLoCo and ssp
                            // the next commit point is awaited); leave before the next one.
                            _left = _stopped = true;
                            break;
                        }
                    }
                    catch (Exception e) when (_elastic != null && ElasticTraining.IsLostMember(e))
                    {
                        lost = e; // not committed: the next generation redoes it from the most advanced member's last commit
                    }
                if (lost != null)
                    break;
                if (_sinceProgress.Elapsed.TotalSeconds >= 2)
                    Progress(epoch, batch.Index, epochSamples, timer, lossSum / lossCount);
                if (_config.MaxSteps > 0 && _step >= _config.MaxSteps)
                {
                    _stopped = true;
                    run.Checkpoints.SaveAfter(_step, epoch, batch.Index);
                    break;
                }
            }
            if (rejoin)
            {
                rejoin = false;
                continue; // the same epoch from the same position, dealt over the new world size
            }
            if (lost != null)
                continue; // re-form at the top, then go on from the new rank 0's position
            if (_stopped)
                break;
            try
            {
                _elastic?.EndOfEpoch(epoch, position, _step);
                acc = _evaluation.TakesPart ? _evaluation.At(_step) : double.NaN;
            }
            catch (Exception e) when (_elastic != null && ElasticTraining.IsLostMember(e))
            {
                lost = e; // lost in the epoch's last exchange or rank 0's evaluation: the recovery says where it stands
                continue;
            }
            break;
        }
        _samples += epochSamples;
        if (_stopped)
            return null;
        // After a recovery at the epoch's end the evaluation runs without its barrier: a survivor that was already past
        // it is in the next epoch's first step, and a barrier here would pair with that step's exchange.
        if (recovered && double.IsNaN(acc) && run.Lead)
            acc = _evaluation.At(_step, barrier: false);
        double seconds = timer.Elapsed.TotalSeconds - (_evaluation.Seconds - evaluationBefore);
        var result = new EpochResult(
            epoch + 1,
            lossSum / Math.Max(lossCount, 1),
            acc,
            seconds,
            epochSamples * run.Workers / seconds
        );
        _epochs.Add(result);
        run.Observers.Lead(o => o.OnEpoch(new EpochEvent(result, _config.Epochs, run.Workers, run.Strategy?.Name)));
        run.Checkpoints.Save(_step, epoch + 1, 0);
        return result;
    }

    /// <summary>Forward and backward of one micro-batch; its loss. Accumulation micro-batches do not communicate: the
    /// stepping one averages the total.</summary>
    private double ForwardBackward(Batch batch, bool stepNow)
    {
        using var images = batch.Inputs.To(run.Device);
        using var labels = batch.Labels.To(run.Device);
        using var amp = _config.Amp == MixedPrecision.Bf16 ? Autograd.Autocast.Bf16() : null; // forward and backward
        using var logits = run.Model.Forward(images);
        using var loss = F.CrossEntropy(logits, labels);
        using (!stepNow ? run.Ddp?.NoSync() : null)
        {
            if (_config.GradAccumulation > 1)
            {
                using var scaled = Ops.MulScalar(loss, 1.0 / _config.GradAccumulation);
                scaled.Backward();
            }
            else
                loss.Backward();
        }
        // Read after the backward is queued: on a GPU the host does not wait between forward and backward.
        return loss.Item();
    }

    private void OptimizerStep()
    {
        var opt = run.Optimizer;
        if (run.Strategy is not { } strategy)
        {
            if (_config.ClipNorm > 0)
                GradClip.ClipGradNorm(run.Model.Parameters(), _config.ClipNorm);
            run.Schedule.Apply(opt, _step);
            if (run.Elastic != null)
                opt.Lr *= run.LrScale; // an elastic run down to its last member
            opt.Step();
            opt.ZeroGrad();
            return;
        }
        run.Schedule.Apply(opt, _step);
        if (run.Elastic != null)
            opt.Lr *= run.LrScale; // the batch policy's rate (1 until the world size changes)
        double compress = strategy.CompressSeconds,
            comm = strategy.CommunicationSeconds,
            wait = strategy.WaitSeconds;
        long start = Stopwatch.GetTimestamp();
        strategy.Step();
        var stepEvent = new StrategyStepEvent(
            _step,
            start,
            Stopwatch.GetElapsedTime(start).TotalSeconds,
            strategy.CompressSeconds - compress,
            strategy.CommunicationSeconds - comm,
            strategy.WaitSeconds - wait
        );
        run.Observers.All(o => o.OnStrategyStep(stepEvent));
    }

    /// <summary>Where the run stands (rank 0, every couple of seconds): rate and ETA and, under a strategy, what
    /// communication costs so far — bytes handed to collectives per step, and the error-feedback residual still
    /// waiting to be sent.</summary>
    private void Progress(int epoch, int batchIndex, int epochSamples, Stopwatch epochTimer, double meanLoss)
    {
        _sinceProgress.Restart();
        double rate = epochSamples / epochTimer.Elapsed.TotalSeconds;
        double remaining = (double)(_config.Epochs - epoch) * run.Loader.SamplesPerEpoch - epochSamples;
        var strategy = run.Strategy;
        double? kb =
            strategy == null || _workerSteps == 0 ? null : strategy.BytesCommunicated / (double)_workerSteps / 1e3;
        var progress = new ProgressEvent(
            epoch + 1,
            _config.Epochs,
            batchIndex + 1,
            run.Loader.BatchesPerEpoch,
            meanLoss,
            rate,
            kb,
            strategy?.ResidualNorm ?? 0,
            TimeSpan.FromSeconds(remaining / Math.Max(rate, 1))
        );
        run.Observers.Lead(o => o.OnProgress(progress));
    }
}
