using HpcEngine.Data;
using HpcEngine.NN;

namespace HpcEngine.Training;

/// <summary><see cref="TrainConfig.CudaGraph"/>: the training step (forward, backward, optimizer) captured in a CUDA
/// graph on the first full batch, with static input buffers on the device, and replayed for every full batch after —
/// one launch per step instead of one per kernel.</summary>
internal sealed class GraphedTraining(TrainingRun run) : IDisposable
{
    private Backends.IDeviceGraph? _graph;
    private Tensor? _images,
        _labels,
        _loss;

    /// <summary>Trains on <paramref name="batch"/> as optimizer step <paramref name="step"/> (0-based) and returns its
    /// loss.</summary>
    public double Step(Batch batch, long step)
    {
        var device = run.Device;
        _images ??= Tensor.Empty(batch.Inputs.ShapeArray, batch.Inputs.DType, device).DetachFromScope();
        _labels ??= Tensor.Empty(batch.Labels.ShapeArray, batch.Labels.DType, device).DetachFromScope();
        _loss ??= Tensor.Empty([], DType.Float32, device).DetachFromScope();
        _images.CopyFrom(batch.Inputs);
        _labels.CopyFrom(batch.Labels);
        var opt = run.Optimizer;
        run.Schedule.Apply(opt, step); // the device learning rate, read by the replayed kernels
        if (_graph == null)
            // the warm-up is this batch's step
            _graph = Backends.DeviceBackends.For(device).CaptureGraph(Captured, warmup: 1);
        else
            _graph.Replay();
        // A replay runs no host code, so the optimizer's step count is set from the trainer's (one step per batch).
        opt.SetStepCount(step + 1);
        // As after an eager step: the handles go (the graph keeps writing its own gradient memory), so an eager step on
        // a short batch starts from no gradient instead of accumulating onto the replay's.
        opt.ZeroGrad();
        return _loss.Item();
    }

    /// <summary>The step the graph records.</summary>
    private void Captured()
    {
        using var scope = new TensorScope();
        using var amp = run.Config.Amp == MixedPrecision.Bf16 ? Autograd.Autocast.Bf16() : null;
        var opt = run.Optimizer;
        opt.ZeroGrad();
        var loss = F.CrossEntropy(run.Model.Forward(_images!), _labels!);
        loss.Backward();
        opt.Step();
        _loss!.CopyFrom(loss);
    }

    public void Dispose()
    {
        _graph?.Dispose();
        _images?.Dispose();
        _labels?.Dispose();
        _loss?.Dispose();
    }
}
