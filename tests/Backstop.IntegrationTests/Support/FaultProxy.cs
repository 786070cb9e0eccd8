using System.Net;
using System.Net.Sockets;

namespace Backstop.IntegrationTests.Support;

/// <summary>What the proxy does once its byte budget in one direction is spent.</summary>
public enum ProxyFault
{
    /// <summary>Close every connection and stop listening: the server went away mid-transfer.</summary>
    Vanish,

    /// <summary>Stop forwarding but keep every connection open: the server hangs.</summary>
    Hang,
}

/// <summary>
/// A TCP proxy on a free loopback port in front of a real server that injects one fault: after
/// <c>budget</c> bytes have gone from the server to the client (<see cref="Direction.Down"/>) or from the client
/// to the server (<see cref="Direction.Up"/>), summed over all connections, it vanishes or hangs. Until then
/// it forwards faithfully, so the fault lands in the middle of a real protocol exchange. Runs on the thread
/// pool (never on the test's synchronization context).
/// </summary>
public sealed class FaultProxy : IDisposable
{
    public enum Direction
    {
        Down,
        Up,
    }

    private readonly TcpListener _listener = new(IPAddress.Loopback, 0);
    private readonly CancellationTokenSource _stop = new();
    private readonly List<Socket> _sockets = [];
    private readonly int _upstreamPort;
    private readonly Direction _direction;
    private readonly ProxyFault _fault;
    private readonly List<Socket> _clients = [];
    private readonly List<Socket> _upstreams = [];
    private long _budget;
    private long _forwarded;
    private int _tripped;
    private volatile bool _partitioned;

    public FaultProxy(int upstreamPort, long budget, Direction direction = Direction.Down, ProxyFault fault = ProxyFault.Vanish)
    {
        _upstreamPort = upstreamPort;
        _budget = budget;
        _direction = direction;
        _fault = fault;
        _listener.Start();
        Port = ((IPEndPoint)_listener.LocalEndpoint).Port;
        _ = Task.Run(AcceptLoopAsync);
    }

    public int Port { get; }

    /// <summary>Bytes forwarded so far in the metered direction (with a budget never spent, the proxy only counts).</summary>
    public long Forwarded => Interlocked.Read(ref _forwarded);

    /// <summary>True once the fault has happened.</summary>
    public bool Tripped => Volatile.Read(ref _tripped) == 1;

    /// <summary>
    /// A network partition: the server side of every connection is reset (what the server concludes once its keepalives
    /// go unanswered), the client side stays open and silent (what the client sees: nothing), and new connections are
    /// accepted and never answered, until <see cref="Heal"/>.
    /// </summary>
    public void Partition()
    {
        _partitioned = true;
        lock (_sockets)
        {
            foreach (var s in _upstreams)
            {
                Reset(s);
            }

            _upstreams.Clear();
        }
    }

    /// <summary>The partition ends: the connections cut by it are reset on the client side too (as its own timeouts would), new ones go through.</summary>
    public void Heal()
    {
        lock (_sockets)
        {
            foreach (var s in _clients)
            {
                Reset(s);
            }

            _clients.Clear();
        }

        _partitioned = false;
    }

    private static void Reset(Socket s)
    {
        try
        {
            s.LingerState = new LingerOption(true, 0);
            s.Close();
        }
        catch (ObjectDisposedException)
        {
        }
    }

    private async Task AcceptLoopAsync()
    {
        while (!_stop.IsCancellationRequested)
        {
            Socket client;
            try
            {
                client = await _listener.AcceptSocketAsync(_stop.Token);
            }
            catch (Exception e) when (e is OperationCanceledException or SocketException or ObjectDisposedException)
            {
                return;
            }

            if (_partitioned)
            {
                lock (_sockets)
                {
                    _sockets.Add(client);
                    _clients.Add(client); // accepted, never answered
                }

                continue;
            }

            var upstream = new Socket(AddressFamily.InterNetwork, SocketType.Stream, ProtocolType.Tcp);
            try
            {
                await upstream.ConnectAsync(IPAddress.Loopback, _upstreamPort, _stop.Token);
            }
            catch (Exception e) when (e is OperationCanceledException or SocketException)
            {
                client.Dispose();
                upstream.Dispose();
                continue;
            }

            lock (_sockets)
            {
                _sockets.Add(client);
                _sockets.Add(upstream);
                _clients.Add(client);
                _upstreams.Add(upstream);
            }

            _ = Task.Run(() => PumpAsync(upstream, client, _direction == Direction.Down));
            _ = Task.Run(() => PumpAsync(client, upstream, _direction == Direction.Up));
        }
    }

    private async Task PumpAsync(Socket from, Socket to, bool metered)
    {
        var buffer = new byte[16384];
        try
        {
            while (true)
            {
                var n = await from.ReceiveAsync(buffer, SocketFlags.None, _stop.Token);
                if (n == 0)
                {
                    to.Shutdown(SocketShutdown.Send);
                    return;
                }

                var allowed = n;
                if (metered)
                {
                    var left = Interlocked.Add(ref _budget, -n) + n;
                    allowed = (int)Math.Clamp(left, 0, n);
                }

                if (Tripped || _partitioned)
                {
                    if (_partitioned)
                    {
                        continue; // dropped on the floor, as by a cut cable
                    }

                    allowed = 0;
                }

                if (allowed > 0)
                {
                    await to.SendAsync(buffer.AsMemory(0, allowed), SocketFlags.None, _stop.Token);
                    if (metered)
                    {
                        Interlocked.Add(ref _forwarded, allowed);
                    }
                }

                if (allowed < n)
                {
                    Trip();
                    return;
                }
            }
        }
        catch (Exception e) when (e is OperationCanceledException or SocketException or ObjectDisposedException)
        {
        }
    }

    private void Trip()
    {
        if (Interlocked.Exchange(ref _tripped, 1) == 1 || _fault == ProxyFault.Hang)
        {
            return; // a hang keeps every socket open and silent until Dispose
        }

        CloseAll();
    }

    private void CloseAll()
    {
        _stop.Cancel();
        _listener.Stop();
        lock (_sockets)
        {
            foreach (var s in _sockets)
            {
                try
                {
                    s.LingerState = new LingerOption(true, 0); // a reset, as when the process dies
                    s.Close();
                }
                catch (ObjectDisposedException)
                {
                }
            }

            _sockets.Clear();
        }
    }

    public void Dispose()
    {
        CloseAll();
        _stop.Dispose();
    }
}
