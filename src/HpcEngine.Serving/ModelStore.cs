namespace HpcEngine.Serving;

/// <summary>The model being served and its hot reload: a background poll of the checkpoint directory loads a newer
/// checkpoint (another step in checkpoint.json) off the request path and swaps it in atomically. A model in use by a
/// batch is disposed only once that batch has released it, so in-flight requests finish on the model they started
/// on.</summary>
public sealed class ModelStore : IDisposable
{
    private readonly object _gate = new();
    private readonly string _dir;
    private readonly string? _name;
    private readonly Dictionary<ServedModel, int> _users = [];
    private readonly HashSet<ServedModel> _retired = [];
    private readonly Timer? _poll;
    private readonly Action<string>? _log;
    private ServedModel _current;
    private int _reloading;

    /// <summary>The model requests see now.</summary>
    public ServedModel Current
    {
        get
        {
            lock (_gate)
                return _current;
        }
    }

    /// <summary>Called after each swap, with the new model.</summary>
    public event Action<ServedModel>? Swapped;

    /// <summary>Serves the current checkpoint of <paramref name="checkpointDir"/>, polling it every
    /// <paramref name="pollInterval"/> for a newer one (zero: no reload).</summary>
    public ModelStore(string checkpointDir, string? name, TimeSpan pollInterval, Action<string>? log = null)
    {
        ArgumentNullException.ThrowIfNull(checkpointDir);
        _dir = checkpointDir;
        _name = name;
        _log = log;
        _current = ServedModel.Load(checkpointDir, name);
        if (pollInterval > TimeSpan.Zero)
            _poll = new Timer(_ => Reload(), null, pollInterval, pollInterval);
    }

    /// <summary>Loads the directory's checkpoint if its step differs from the served one; returns whether it
    /// swapped. A checkpoint that fails to load is logged and the old model kept.</summary>
    public bool Reload()
    {
        if (Interlocked.Exchange(ref _reloading, 1) == 1)
            return false;
        try
        {
            var (model, _) = Training.Checkpoint.Locate(_dir);
            if (model == null || model == Current.WeightsPath)
                return false;
            ServedModel next;
            try
            {
                next = ServedModel.Load(_dir, _name);
            }
            catch (Exception e)
                when (e
                        is IOException
                            or InvalidDataException
                            or ArgumentException
                            or UnauthorizedAccessException
                            or KeyNotFoundException
                )
            {
                _log?.Invoke($"reload of {_dir} failed, still serving version {Current.Version}: {e.Message}");
                return false;
            }
            ServedModel old;
            lock (_gate)
            {
                old = _current;
                _current = next;
                if (!_users.ContainsKey(old))
                    old.Dispose();
                else
                    _retired.Add(old);
            }
            _log?.Invoke($"now serving {next.Name} version {next.Version} ({next.WeightsPath})");
            Swapped?.Invoke(next);
            return true;
        }
        finally
        {
            Volatile.Write(ref _reloading, 0);
        }
    }

    /// <summary>The current model, held until <see cref="Release"/>.</summary>
    public ServedModel Acquire()
    {
        lock (_gate)
        {
            _users[_current] = _users.GetValueOrDefault(_current) + 1;
            return _current;
        }
    }

    /// <summary>Lets go of a model from <see cref="Acquire"/>; a retired one is disposed with its last user.</summary>
    public void Release(ServedModel model)
    {
        ArgumentNullException.ThrowIfNull(model);
        lock (_gate)
        {
            int left = _users[model] - 1;
            if (left > 0)
            {
                _users[model] = left;
                return;
            }
            _users.Remove(model);
            if (_retired.Remove(model))
                model.Dispose();
        }
    }

    /// <inheritdoc/>
    public void Dispose()
    {
        _poll?.Dispose();
        lock (_gate)
        {
            foreach (var m in _retired)
                m.Dispose();
            _retired.Clear();
            _current.Dispose();
        }
    }
}
