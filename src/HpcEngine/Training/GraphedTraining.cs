namespace HpcEngine.Training;

/// <summary>What <c>--cuda-graph</c> keeps across steps: the captured step and its static inputs and loss.</summary>
internal sealed class GraphedTraining : IDisposable
{
    public Backends.IDeviceGraph? Graph;
    public Tensor? Images, Labels, Loss;

    public void Dispose()
    {
        Graph?.Dispose();
        Images?.Dispose();
        Labels?.Dispose();
        Loss?.Dispose();
    }
}
