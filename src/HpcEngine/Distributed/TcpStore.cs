using System.Buffers.Binary;
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
    private const byte CmdSet = 1, CmdGet = 2, CmdAdd = 3, CmdCas = 4, CmdDelete = 5;
    private const byte StatusOk = 0, StatusTimeout = 1;

    private readonly Socket _socket;
    private readonly NetworkStream _stream;
    private readonly SemaphoreSlim _gate = new(1, 1);
    private readonly StoreOptions _options;
    private readonly TcpStoreServer? _server;

    private TcpStore(Socket socket, StoreOptions options, TcpStoreServer? server)
    {
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
            server = new TcpStoreServer(host, port, options);
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
                var store = new TcpStore(s, options, server);
                store.Authenticate();
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
        if (flag[0] == 0) return;
        var nonce = new byte[32];
        _stream.ReadExactly(nonce);
        if (_options.Token == null)
            throw new UnauthorizedAccessException("the store requires a token (set HPCENGINE_TOKEN to the shared secret)");
        _stream.Write(HMACSHA256.HashData(Encoding.UTF8.GetBytes(_options.Token), nonce));
        var verdict = new byte[1];
        if (_stream.ReadAtLeast(verdict, 1, throwOnEndOfStream: false) < 1 || verdict[0] != 1)
            throw new UnauthorizedAccessException("the store refused the token");
    }

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

    private static string CmdName(byte c) => c switch { CmdSet => "set", CmdGet => "get", CmdAdd => "add", CmdCas => "compare_set", CmdDelete => "delete", _ => "?" };

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

        private async Task Serve(Socket socket)
        {
            using var stream = new NetworkStream(socket, ownsSocket: true);
            try
            {
                if (!await Handshake(stream)) return;
                var head = new byte[5];
                while (!_stop.IsCancellationRequested)
                {
                    if (await stream.ReadAtLeastAsync(head, 5, false, _stop.Token) < 5) return;
                    byte cmd = head[0];
                    var key = await ReadField(stream, BinaryPrimitives.ReadUInt32LittleEndian(head.AsSpan(1)), _options.MaxKeyBytes);
                    var val = await ReadField(stream, await ReadU32(stream), _options.MaxValueBytes);
                    var val2 = await ReadField(stream, await ReadU32(stream), _options.MaxValueBytes);
                    var tb = new byte[8];
                    await stream.ReadExactlyAsync(tb, _stop.Token);
                    long timeoutMs = BinaryPrimitives.ReadInt64LittleEndian(tb);
                    if (key == null || val == null || val2 == null || timeoutMs < 0) return; // malformed: drop this connection
                    var resp = await Handle(cmd, Encoding.UTF8.GetString(key), val, val2, TimeSpan.FromMilliseconds(Math.Min(timeoutMs, int.MaxValue)));
                    if (resp == null) return;
                    await stream.WriteAsync(resp, _stop.Token);
                }
            }
            catch (Exception e) when (e is IOException or SocketException or OperationCanceledException or ObjectDisposedException or EndOfStreamException)
            {
                // the client went away or sent garbage; only this connection ends
            }
            finally
            {
                lock (_lock) _clients.Remove(socket);
            }
        }

        private async Task<bool> Handshake(NetworkStream s)
        {
            if (_options.Token == null)
            {
                await s.WriteAsync(new byte[] { 0 }, _stop.Token);
                return true;
            }
            var nonce = RandomNumberGenerator.GetBytes(32);
            await s.WriteAsync(new byte[] { 1 }.Concat(nonce).ToArray(), _stop.Token);
            var answer = new byte[32];
            using var cts = CancellationTokenSource.CreateLinkedTokenSource(_stop.Token);
            cts.CancelAfter(TimeSpan.FromSeconds(10));
            if (await s.ReadAtLeastAsync(answer, 32, false, cts.Token) < 32) return false;
            bool ok = CryptographicOperations.FixedTimeEquals(answer, HMACSHA256.HashData(Encoding.UTF8.GetBytes(_options.Token), nonce));
            await s.WriteAsync(new byte[] { (byte)(ok ? 1 : 0) }, _stop.Token);
            return ok;
        }

        private async Task<uint> ReadU32(Stream s)
        {
            var b = new byte[4];
            await s.ReadExactlyAsync(b, _stop.Token);
            return BinaryPrimitives.ReadUInt32LittleEndian(b);
        }

        /// <summary>Reads a length-prefixed field, or returns null (without reading or allocating) when the length
        /// breaks the limit, so an oversized or hostile prefix costs nothing.</summary>
        private async Task<byte[]?> ReadField(Stream s, uint len, int max)
        {
            if (len > max) return null;
            var b = new byte[len];
            await s.ReadExactlyAsync(b, _stop.Token);
            return b;
        }

        private async Task<byte[]?> Handle(byte cmd, string key, byte[] val, byte[] val2, TimeSpan timeout)
        {
            switch (cmd)
            {
                case CmdSet:
                    lock (_lock) { _data[key] = val; Wake(key); }
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
                            _data[key] = val2;
                            Wake(key);
                            return Bytes(val2);
                        }
                        return Bytes(cur ?? []);
                    }
                case CmdDelete:
                    lock (_lock) return [StatusOk, (byte)(_data.Remove(key) ? 1 : 0)];
                default:
                    return null;
            }
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
