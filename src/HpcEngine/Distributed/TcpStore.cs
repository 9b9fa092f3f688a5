using System.Buffers;
using System.Buffers.Binary;
using System.IO.Pipelines;
using System.Net;
using System.Net.Sockets;
using System.Security.Cryptography;
using System.Text;

namespace HpcEngine.Distributed;

/// <summary>The store served by rank 0 and its client. Wire format (little-endian): a request is
/// <c>[u8 cmd][u32 keyLen][key][u32 valLen][val][u32 val2Len][val2][i64 timeoutMs]</c>; the response starts with a
/// status byte (0 ok, 1 timeout) followed by the command's result. Every length is checked against the limits
/// <em>before</em> anything is allocated; a malformed request closes that connection only. With a token, the server
/// first sends a 32-byte nonce and expects HMAC-SHA256(token, nonce) back; a wrong or missing answer is refused before
/// any state is read or changed.</summary>
public sealed class TcpStore : IStore
{
    private const byte CmdSet = 1, CmdGet = 2, CmdAdd = 3, CmdCas = 4, CmdDelete = 5, CmdJoin = 6;
    private const byte StatusOk = 0, StatusTimeout = 1, StatusRefused = 2;

    private readonly Socket _socket;
    private readonly NetworkStream _stream;
    private readonly SemaphoreSlim _gate = new(1, 1);
    private readonly StoreOptions _options;
    private readonly TcpStoreServer? _server;
    private readonly string _endpoint;

    private TcpStore(Socket socket, StoreOptions options, TcpStoreServer? server, string endpoint)
    {
        _endpoint = endpoint;
        _socket = socket;
        _stream = new NetworkStream(socket, ownsSocket: true);
        _options = options;
        _server = server;
    }

    /// <summary>The port the server listens on (rank 0 only).</summary>
    public int? ServerPort => _server?.Port;

    /// <summary>Rank 0 calls with isServer: starts the server on host:port (port 0 picks one) and connects to it.
    /// Others connect, retrying until <paramref name="connectTimeout"/>.</summary>
    public static TcpStore Create(string host, int port, bool isServer, StoreOptions? options = null, TimeSpan? connectTimeout = null)
    {
        options ??= new StoreOptions();
        TcpStoreServer? server = null;
        if (isServer)
        {
            try { server = new TcpStoreServer(host, port, options); }
            catch (SocketException e) when (e.SocketErrorCode == SocketError.AddressAlreadyInUse)
            {
                throw new InvalidOperationException($"the store port {host}:{port} is in use (another job's store, or another program): choose another --master-port", e);
            }
            catch (SocketException e) when (e.SocketErrorCode == SocketError.AddressNotAvailable)
            {
                throw new InvalidOperationException($"the store cannot listen on {host}:{port}: {host} is not an address of this host; MASTER_ADDR must be node 0's address (run the store's node with --node-rank 0)", e);
            }
            port = server.Port;
        }
        var deadline = DateTime.UtcNow + (connectTimeout ?? TimeSpan.FromSeconds(60));
        Exception? last = null;
        while (DateTime.UtcNow < deadline)
        {
            var s = new Socket(SocketType.Stream, ProtocolType.Tcp) { NoDelay = true };
            try
            {
                s.Connect(host, port);
                var store = new TcpStore(s, options, server, $"{host}:{port}");
                try
                {
                    store.Authenticate();
                    store.Join();
                }
                catch
                {
                    store._stream.Dispose();
                    throw;
                }
                return store;
            }
            catch (SocketException e)
            {
                last = e;
                s.Dispose();
                Thread.Sleep(50);
            }
            catch
            {
                s.Dispose();
                server?.Dispose();
                throw;
            }
        }
        server?.Dispose();
        throw new TimeoutException($"could not connect to the store at {host}:{port} within {(connectTimeout ?? TimeSpan.FromSeconds(60)).TotalSeconds:F0}s: {last?.Message}");
    }

    private void Authenticate()
    {
        var flag = new byte[1];
        _stream.ReadExactly(flag);
        if (flag[0] == 0)
        {
            if (_options.Token != null)
                throw new UnauthorizedAccessException($"the store at {_endpoint} does not authenticate, but this rank has a token (HPCENGINE_TOKEN): it is not this job's store (another job, or a stranger, on that port); refusing it");
            return;
        }
        var nonce = new byte[32];
        _stream.ReadExactly(nonce);
        if (_options.Token == null)
            throw new UnauthorizedAccessException($"the store at {_endpoint} requires a token (set HPCENGINE_TOKEN to the job's shared secret; hpcengine launch hands its workers one)");
        _stream.Write(HMACSHA256.HashData(Encoding.UTF8.GetBytes(_options.Token), nonce));
        var verdict = new byte[1];
        if (_stream.ReadAtLeast(verdict, 1, throwOnEndOfStream: false) < 1 || verdict[0] != 1)
            throw new UnauthorizedAccessException($"the store at {_endpoint} refused this rank's token: it serves another job, or the token differs");
    }

    /// <summary>Says which job this client belongs to; a server of another job refuses (see <see cref="StoreOptions.JobId"/>).</summary>
    private void Join() => Call(CmdJoin, _options.JobId ?? "", [], [], TimeSpan.FromSeconds(30), _ => 0);

    public void Set(string key, byte[] value, TimeSpan? timeout = null) => Call(CmdSet, key, value, [], timeout, _ => 0);

    public byte[] Get(string key, TimeSpan? timeout = null) => Call(CmdGet, key, [], [], timeout, ReadBytes);

    public long Add(string key, long amount, TimeSpan? timeout = null)
    {
        var v = new byte[8];
        BinaryPrimitives.WriteInt64LittleEndian(v, amount);
        return Call(CmdAdd, key, v, [], timeout, s => BinaryPrimitives.ReadInt64LittleEndian(ReadExactly(s, 8)));
    }

    public byte[] CompareSet(string key, byte[] expected, byte[] desired, TimeSpan? timeout = null) => Call(CmdCas, key, expected, desired, timeout, ReadBytes);

    public bool Delete(string key, TimeSpan? timeout = null) => Call(CmdDelete, key, [], [], timeout, s => ReadExactly(s, 1)[0] == 1);

    public void Wait(IEnumerable<string> keys, TimeSpan? timeout = null)
    {
        ArgumentNullException.ThrowIfNull(keys);
        var deadline = DateTime.UtcNow + (timeout ?? _options.DefaultTimeout);
        foreach (var k in keys)
        {
            var left = deadline - DateTime.UtcNow;
            Get(k, left > TimeSpan.Zero ? left : TimeSpan.FromMilliseconds(1));
        }
    }

    private static byte[] ReadBytes(Stream s)
    {
        int len = BinaryPrimitives.ReadInt32LittleEndian(ReadExactly(s, 4));
        return ReadExactly(s, len);
    }

    private static byte[] ReadExactly(Stream s, int n)
    {
        var b = new byte[n];
        s.ReadExactly(b);
        return b;
    }

    private T Call<T>(byte cmd, string key, byte[] val, byte[] val2, TimeSpan? timeout, Func<Stream, T> read)
    {
        ArgumentNullException.ThrowIfNull(key);
        var k = Encoding.UTF8.GetBytes(key);
        if (k.Length > _options.MaxKeyBytes) throw new ArgumentException($"store key of {k.Length} bytes exceeds the {_options.MaxKeyBytes}-byte limit", nameof(key));
        if (val.Length > _options.MaxValueBytes || val2.Length > _options.MaxValueBytes)
            throw new ArgumentException($"store value exceeds the {_options.MaxValueBytes}-byte limit");
        var t = timeout ?? _options.DefaultTimeout;
        var req = new byte[1 + 4 + k.Length + 4 + val.Length + 4 + val2.Length + 8];
        int o = 0;
        req[o++] = cmd;
        BinaryPrimitives.WriteInt32LittleEndian(req.AsSpan(o), k.Length); o += 4; k.CopyTo(req, o); o += k.Length;
        BinaryPrimitives.WriteInt32LittleEndian(req.AsSpan(o), val.Length); o += 4; val.CopyTo(req, o); o += val.Length;
        BinaryPrimitives.WriteInt32LittleEndian(req.AsSpan(o), val2.Length); o += 4; val2.CopyTo(req, o); o += val2.Length;
        BinaryPrimitives.WriteInt64LittleEndian(req.AsSpan(o), (long)t.TotalMilliseconds);
        if (!_gate.Wait(t)) throw new TimeoutException($"store {CmdName(cmd)} '{key}': the client is busy with another call");
        try
        {
            // The server answers a timed-out wait with a status, so the connection stays in step; the socket timeout
            // is only the backstop for a dead server.
            _socket.ReceiveTimeout = (int)Math.Min(int.MaxValue, t.TotalMilliseconds + 5000);
            _stream.Write(req);
            var status = ReadExactly(_stream, 1)[0];
            if (status == StatusTimeout) throw new TimeoutException($"store {CmdName(cmd)} '{key}' timed out after {t.TotalSeconds:F1}s");
            if (status == StatusRefused) throw new InvalidOperationException($"the store at {_endpoint} refused {CmdName(cmd)} '{key}': {Encoding.UTF8.GetString(ReadBytes(_stream))}");
            if (status != StatusOk) throw new IOException($"store {CmdName(cmd)} '{key}': bad response status {status}");
            return read(_stream);
        }
        catch (IOException e) when (e.InnerException is SocketException se && se.SocketErrorCode == SocketError.TimedOut)
        {
            throw new TimeoutException($"store {CmdName(cmd)} '{key}': no answer from the store server", e);
        }
        finally
        {
            _gate.Release();
        }
    }

    private static string CmdName(byte c) => c switch { CmdSet => "set", CmdGet => "get", CmdAdd => "add", CmdCas => "compare_set", CmdDelete => "delete", CmdJoin => "join", _ => "?" };

    public void Dispose()
    {
        _stream.Dispose();
        _gate.Dispose();
        _server?.Dispose();
    }

    /// <summary>The server: one async loop per connection over a shared map with per-key waiters.</summary>
    private sealed class TcpStoreServer : IDisposable
    {
        private readonly TcpListener _listener;
        private readonly StoreOptions _options;
        private readonly Dictionary<string, byte[]> _data = new();
        private readonly Dictionary<string, List<TaskCompletionSource>> _waiters = new();
        private readonly Lock _lock = new();
        private readonly CancellationTokenSource _stop = new();
        private readonly List<Socket> _clients = new();
        private long _bytesHeld;

        public int Port { get; }

        public TcpStoreServer(string host, int port, StoreOptions options)
        {
            _options = options;
            var addr = IPAddress.TryParse(host, out var ip) ? ip : Dns.GetHostAddresses(host).First(a => a.AddressFamily == AddressFamily.InterNetwork);
            _listener = new TcpListener(addr, port);
            _listener.Start(512);
            Port = ((IPEndPoint)_listener.LocalEndpoint).Port;
            _ = AcceptLoop();
        }

        private async Task AcceptLoop()
        {
            while (!_stop.IsCancellationRequested)
            {
                Socket s;
                try { s = await _listener.AcceptSocketAsync(_stop.Token); }
                catch (Exception) { return; }
                s.NoDelay = true;
                lock (_lock) _clients.Add(s);
                _ = Serve(s);
            }
        }

        /// <summary>One connection, Kestrel-style: a PipeReader buffers what arrives, whole requests are parsed from it
        /// (lengths checked against the limits before anything is buffered for them), and responses go out through a
        /// PipeWriter.</summary>
        private async Task Serve(Socket socket)
        {
            using var stream = new NetworkStream(socket, ownsSocket: true);
            var reader = PipeReader.Create(stream, new StreamPipeReaderOptions(leaveOpen: true));
            var writer = PipeWriter.Create(stream, new StreamPipeWriterOptions(leaveOpen: true));
            try
            {
                if (!await Handshake(reader, writer)) return;
                bool joined = false;
                while (!_stop.IsCancellationRequested)
                {
                    var result = await reader.ReadAsync(_stop.Token);
                    var buffer = result.Buffer;
                    var parse = StoreRequest.TryParse(buffer, _options, out var request, out var consumed);
                    if (parse == StoreRequest.Parse.Malformed) return; // drop this connection
                    if (parse == StoreRequest.Parse.Incomplete)
                    {
                        if (result.IsCompleted) return; // truncated: the client went away mid-request
                        reader.AdvanceTo(buffer.Start, buffer.End);
                        continue;
                    }
                    reader.AdvanceTo(consumed);
                    // The first request must say the job: a client of another job is answered once and dropped,
                    // before it can read or change anything.
                    if (!joined)
                    {
                        if (request.Cmd != CmdJoin) return;
                        string theirs = request.Key;
                        bool same = _options.JobId == null || theirs.Length == 0 || theirs == _options.JobId;
                        await writer.WriteAsync(same ? [StatusOk] : Refusal($"this store serves job '{_options.JobId}' on port {Port}; the client is in job '{theirs}'. Two jobs cannot share a store port: give the second job another --master-port"), _stop.Token);
                        if (!same) return;
                        joined = true;
                        continue;
                    }
                    var resp = await Handle(request.Cmd, request.Key, request.Value, request.Value2, request.Timeout);
                    if (resp == null) return;
                    await writer.WriteAsync(resp, _stop.Token);
                }
            }
            catch (Exception e) when (e is IOException or SocketException or OperationCanceledException or ObjectDisposedException or EndOfStreamException)
            {
                // the client went away or sent garbage; only this connection ends
            }
            finally
            {
                await reader.CompleteAsync();
                await writer.CompleteAsync();
                lock (_lock) _clients.Remove(socket);
            }
        }

        private async Task<bool> Handshake(PipeReader reader, PipeWriter writer)
        {
            if (_options.Token == null)
            {
                await writer.WriteAsync(new byte[] { 0 }, _stop.Token);
                return true;
            }
            var nonce = RandomNumberGenerator.GetBytes(32);
            await writer.WriteAsync(new byte[] { 1 }.Concat(nonce).ToArray(), _stop.Token);
            using var cts = CancellationTokenSource.CreateLinkedTokenSource(_stop.Token);
            cts.CancelAfter(TimeSpan.FromSeconds(10));
            var result = await reader.ReadAtLeastAsync(32, cts.Token);
            if (result.Buffer.Length < 32) return false;
            var answer = result.Buffer.Slice(0, 32).ToArray();
            reader.AdvanceTo(result.Buffer.GetPosition(32));
            bool ok = CryptographicOperations.FixedTimeEquals(answer, HMACSHA256.HashData(Encoding.UTF8.GetBytes(_options.Token), nonce));
            await writer.WriteAsync(new byte[] { (byte)(ok ? 1 : 0) }, _stop.Token);
            return ok;
        }

        private async Task<byte[]?> Handle(byte cmd, string key, byte[] val, byte[] val2, TimeSpan timeout)
        {
            switch (cmd)
            {
                case CmdSet:
                    lock (_lock)
                    {
                        if (OverCap(key, val.Length) is { } refusal) return refusal;
                        _data[key] = val;
                        Wake(key);
                    }
                    return [StatusOk];
                case CmdGet:
                {
                    Task wait;
                    lock (_lock)
                    {
                        if (_data.TryGetValue(key, out var v)) return Bytes(v);
                        var tcs = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
                        if (!_waiters.TryGetValue(key, out var list)) _waiters[key] = list = new();
                        list.Add(tcs);
                        wait = tcs.Task;
                    }
                    if (await Task.WhenAny(wait, Task.Delay(timeout, _stop.Token)) != wait) return [StatusTimeout];
                    lock (_lock) return _data.TryGetValue(key, out var v2) ? Bytes(v2) : [StatusTimeout];
                }
                case CmdAdd:
                {
                    if (val.Length != 8) return null;
                    long now;
                    lock (_lock)
                    {
                        if (OverCap(key, 8) is { } refusal) return refusal;
                        long cur = _data.TryGetValue(key, out var v) && v.Length == 8 ? BinaryPrimitives.ReadInt64LittleEndian(v) : 0;
                        now = cur + BinaryPrimitives.ReadInt64LittleEndian(val);
                        var nb = new byte[8];
                        BinaryPrimitives.WriteInt64LittleEndian(nb, now);
                        _data[key] = nb;
                        Wake(key);
                    }
                    var r = new byte[9];
                    BinaryPrimitives.WriteInt64LittleEndian(r.AsSpan(1), now);
                    return r;
                }
                case CmdCas:
                    lock (_lock)
                    {
                        bool exists = _data.TryGetValue(key, out var cur);
                        if ((!exists && val.Length == 0) || (exists && cur!.AsSpan().SequenceEqual(val)))
                        {
                            if (OverCap(key, val2.Length) is { } refusal) return refusal;
                            _data[key] = val2;
                            Wake(key);
                            return Bytes(val2);
                        }
                        return Bytes(cur ?? []);
                    }
                case CmdDelete:
                    lock (_lock)
                    {
                        bool had = _data.Remove(key, out var gone);
                        if (had) _bytesHeld -= Encoding.UTF8.GetByteCount(key) + gone!.Length;
                        return [StatusOk, (byte)(had ? 1 : 0)];
                    }
                default:
                    return null;
            }
        }

        /// <summary>Under the lock: accounts a write of <paramref name="valueBytes"/> to <paramref name="key"/>, or returns
        /// the refusal when it would take the store past <see cref="StoreOptions.MaxTotalBytes"/>.</summary>
        private byte[]? OverCap(string key, int valueBytes)
        {
            long keyBytes = Encoding.UTF8.GetByteCount(key);
            long now = _data.TryGetValue(key, out var old) ? keyBytes + old.Length : 0;
            long after = _bytesHeld - now + keyBytes + valueBytes;
            if (after > _options.MaxTotalBytes)
                return Refusal($"the store holds {_bytesHeld} bytes and this write of {keyBytes + valueBytes} would pass its {_options.MaxTotalBytes}-byte cap (StoreOptions.MaxTotalBytes)");
            _bytesHeld = after;
            return null;
        }

        private static byte[] Refusal(string message)
        {
            var r = Bytes(Encoding.UTF8.GetBytes(message));
            r[0] = StatusRefused;
            return r;
        }

        private static byte[] Bytes(byte[] v)
        {
            var r = new byte[5 + v.Length];
            BinaryPrimitives.WriteInt32LittleEndian(r.AsSpan(1), v.Length);
            v.CopyTo(r, 5);
            return r;
        }

        private void Wake(string key)
        {
            if (_waiters.Remove(key, out var list)) foreach (var t in list) t.TrySetResult();
        }

        public void Dispose()
        {
            _stop.Cancel();
            _listener.Stop();
            lock (_lock) foreach (var c in _clients) c.Dispose();
        }
    }
}

/// <summary>One store request parsed from the connection's buffer: <c>[u8 cmd][u32 keyLen][key][u32 valLen][val]
/// [u32 val2Len][val2][i64 timeoutMs]</c>.</summary>
internal readonly record struct StoreRequest(byte Cmd, string Key, byte[] Value, byte[] Value2, TimeSpan Timeout)
{
    public enum Parse { Complete, Incomplete, Malformed }

    /// <summary>Parses one whole request from the front of <paramref name="buffer"/>. A length over the limit (or a
    /// negative timeout) is Malformed as soon as its prefix is seen, before any of its bytes are waited for.</summary>
    public static Parse TryParse(ReadOnlySequence<byte> buffer, StoreOptions limits, out StoreRequest request, out SequencePosition consumed)
    {
        request = default;
        consumed = buffer.Start;
        var r = new SequenceReader<byte>(buffer);
        if (!r.TryRead(out byte cmd)) return Parse.Incomplete;
        var key = ReadField(ref r, limits.MaxKeyBytes, out var p1);
        if (p1 != Parse.Complete) return p1;
        var val = ReadField(ref r, limits.MaxValueBytes, out var p2);
        if (p2 != Parse.Complete) return p2;
        var val2 = ReadField(ref r, limits.MaxValueBytes, out var p3);
        if (p3 != Parse.Complete) return p3;
        if (!r.TryReadLittleEndian(out long timeoutMs)) return Parse.Incomplete;
        if (timeoutMs < 0) return Parse.Malformed;
        request = new StoreRequest(cmd, Encoding.UTF8.GetString(key!), val!, val2!, TimeSpan.FromMilliseconds(Math.Min(timeoutMs, int.MaxValue)));
        consumed = r.Position;
        return Parse.Complete;
    }

    private static byte[]? ReadField(ref SequenceReader<byte> r, int max, out Parse parse)
    {
        if (!r.TryReadLittleEndian(out int len)) { parse = Parse.Incomplete; return null; }
        if ((uint)len > (uint)max) { parse = Parse.Malformed; return null; }
        if (r.Remaining < len) { parse = Parse.Incomplete; return null; }
        var field = r.UnreadSequence.Slice(0, len).ToArray();
        r.Advance(len);
        parse = Parse.Complete;
        return field;
    }
}
