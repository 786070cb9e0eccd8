using System.Diagnostics;
using System.Globalization;
using System.Security.Cryptography;
using Backstop.Core.Config;
using Backstop.Core.Plugins;
using Backstop.Core.FileSystem;
using Backstop.Targets.Common;

namespace Backstop.Targets.Sftp;

/// <summary>A pinned SSH host key: its type and base64 blob, as in a known_hosts line or <c>ssh-keyscan</c>'s output.</summary>
public sealed record HostKey(string Type, string Blob)
{
    private static readonly string[] Types = ["ssh-ed25519", "ssh-rsa", "ecdsa-sha2-nistp256", "ecdsa-sha2-nistp384", "ecdsa-sha2-nistp521"];

    /// <summary>OpenSSH's fingerprint: SHA256: and the unpadded base64 of the blob's hash.</summary>
    public string Fingerprint => "SHA256:" + Convert.ToBase64String(SHA256.HashData(Convert.FromBase64String(Blob))).TrimEnd('=');

    /// <summary>"[host]:port type blob [comment]" or "type blob [comment]".</summary>
    public static HostKey? Parse(string line)
    {
        ArgumentNullException.ThrowIfNull(line);
        var parts = line.Split(' ', StringSplitOptions.RemoveEmptyEntries);
        for (var i = 0; i + 1 < parts.Length; i++)
        {
            if (Types.Contains(parts[i]))
            {
                try
                {
                    return Convert.FromBase64String(parts[i + 1]).Length > 16 ? new HostKey(parts[i], parts[i + 1]) : null;
                }
                catch (FormatException)
                {
                    return null;
                }
            }
        }

        return null;
    }
}

public sealed record SftpOptions(string Host, int Port, string User, SecretRef Key, HostKey HostKey, string Path, string? Program);

/// <summary>
/// <c>kind: sftp</c> (a NAS): over rclone's SFTP backend, configured through environment variables, with the
/// server's host key pinned. No remote shell is ever run: hashes are computed by Backstop on what it reads back.
/// </summary>
public sealed class SftpTargetKind : TargetKind<SftpOptions>
{
    public override string Kind => "sftp";

    public override string Summary => "An SSH server over SFTP, through the rclone program; no remote shell is ever run.";

    public override IReadOnlyList<KeyDoc> Keys { get; } =
    [
        new("host", "nas.lan", "The SSH server"),
        new("port", "22", "Its port"),
        new("user", "backup", "The login"),
        new("key", "file:/etc/backstop/id_ed25519", "The private key (a secret: file:PATH, or env:NAME holding the PEM)") { Default = "required" },
        new("host_key", "\"ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIOMqqnkVzrm0SdG6UOoqKLsabgH5C9okWi0dh2l9GKJl\"", "A line from `ssh-keyscan HOST`: a server with another key is refused") { Default = "required" },
        new("path", "/volume1/backups", "The folder on the server"),
        new("rclone", "/usr/local/bin/rclone", "The rclone program") { Default = "rclone on PATH" },
    ];

    public override SftpOptions Parse(ConfigMap map)
    {
        ArgumentNullException.ThrowIfNull(map);
        var host = map.RequireString("host");
        var port = map.IntOr("port", 22, 1, 65535);
        var hostKeyText = map.String("host_key")
                          ?? throw map.Error("host_key", $"the key 'host_key' is required for an sftp target, so that a server that is not the NAS is refused: copy a line printed by 'ssh-keyscan -p {port} {host}'");
        var hostKey = HostKey.Parse(hostKeyText)
                      ?? throw map.Error("host_key", "not an SSH public key: give a known_hosts line such as \"ssh-ed25519 AAAAC3Nza…\" (from ssh-keyscan)");
        var key = map.Secret("key") ?? throw map.Error("key", "the key 'key' is required: the private key for the login, as file:/path or env:NAME");
        var path = map.RequireString("path");
        return new SftpOptions(host, port, map.RequireString("user"), key, hostKey, path, map.PathValue("rclone"));
    }

    public override ITarget Create(TargetDefinition definition, SftpOptions options)
    {
        ArgumentNullException.ThrowIfNull(definition);
        ArgumentNullException.ThrowIfNull(options);
        return new SftpTarget(definition.Name, options, definition.StateDirectory);
    }
}

/// <summary>The rclone target with an SFTP remote defined in the child's environment and a one-line known_hosts file.</summary>
public sealed class SftpTarget : RcloneTarget
{
    private const string Remote = "backstopsftp";
    private readonly SftpOptions _options;

    public SftpTarget(string name, SftpOptions options, string stateDirectory)
        : base(name, $"{Remote}:{options?.Path}", Environment(options!, stateDirectory), options!.Program,
            $"sftp://{options.User}@{options.Host}:{options.Port.ToString(CultureInfo.InvariantCulture)}{(options.Path.StartsWith('/') ? "" : "/")}{options.Path}")
    {
        _options = options;
    }

    /// <summary>The SFTP server's host: a NAS elsewhere, or this machine when it is a loopback address.</summary>
    public override TargetPlace Place => new(_options.Host);

    /// <summary>OpenSSH's sftp, with the NAS's key (SSH_KEY) and its host key checked as known_hosts says.</summary>
    public override string FetchCommand(string key, string localPath) =>
        $"sftp -P {_options.Port.ToString(CultureInfo.InvariantCulture)} -i SSH_KEY -o StrictHostKeyChecking=yes " +
        $"{Backstop.Core.Text.ShellWord.Quote($"{_options.User}@{_options.Host}:{_options.Path.TrimEnd('/')}/{key}")} {Backstop.Core.Text.ShellWord.Quote(localPath)}";

    /// <summary>
    /// A known_hosts file holding only the pinned key (rclone checks the server against it), in the target's private
    /// folder beside the catalog (0700, checked to be this user's, the file created O_EXCL|O_NOFOLLOW): never at a
    /// predictable path under a shared /tmp, where another user could plant their own key first.
    /// </summary>
    private static string WriteKnownHosts(SftpOptions o, string stateDirectory)
    {
        if (stateDirectory.Length == 0)
        {
            throw new InvalidOperationException("an SFTP target needs its state folder (set by the configuration loader)");
        }

        var host = o.Port == 22 ? o.Host : $"[{o.Host}]:{o.Port.ToString(CultureInfo.InvariantCulture)}";
        PrivateFolder.Ensure(System.IO.Path.GetDirectoryName(stateDirectory)!);
        return PrivateFolder.WriteFile(stateDirectory, "known_hosts", System.Text.Encoding.UTF8.GetBytes($"{host} {o.HostKey.Type} {o.HostKey.Blob}\n"));
    }

    private static Dictionary<string, string> Environment(SftpOptions o, string stateDirectory)
    {
        var prefix = $"RCLONE_CONFIG_{Remote.ToUpperInvariant()}_";
        var env = new Dictionary<string, string>(StringComparer.Ordinal)
        {
            [prefix + "TYPE"] = "sftp",
            [prefix + "HOST"] = o.Host,
            [prefix + "PORT"] = o.Port.ToString(CultureInfo.InvariantCulture),
            [prefix + "USER"] = o.User,
            [prefix + "KNOWN_HOSTS_FILE"] = WriteKnownHosts(o, stateDirectory),
            [prefix + "SHELL_TYPE"] = "none", // never run commands on the NAS
            [prefix + "DISABLE_HASHCHECK"] = "true",
            [prefix + "MD5SUM_COMMAND"] = "none",
            [prefix + "SHA1SUM_COMMAND"] = "none",
        };
        if (o.Key.Reference.StartsWith("file:", StringComparison.Ordinal))
        {
            env[prefix + "KEY_FILE"] = o.Key.Reference[5..];
        }
        else
        {
            env[prefix + "KEY_PEM"] = o.Key.Resolve().Replace("\r", "", StringComparison.Ordinal).Replace("\n", "\\n", StringComparison.Ordinal);
        }

        return env;
    }

    /// <summary>A host key refused by rclone is reported with the fingerprint the server actually presented.</summary>
    protected override string Explain(string operation, string stderr)
    {
        ArgumentNullException.ThrowIfNull(stderr);
        if (!stderr.Contains("knownhosts", StringComparison.OrdinalIgnoreCase) && !stderr.Contains("host key", StringComparison.OrdinalIgnoreCase))
        {
            return base.Explain(operation, stderr);
        }

        var seen = ScanHostKeys();
        var pinned = $"host_key pins {_options.HostKey.Fingerprint} ({_options.HostKey.Type})";
        return seen.Count == 0
            ? $"target '{Name}': the SSH host key of {_options.Host}:{_options.Port} is not the one in host_key; {pinned}; refused (ssh-keyscan could not show the key presented)"
            : $"target '{Name}': the SSH host key of {_options.Host}:{_options.Port} is not the one in host_key: the server presented {string.Join(", ", seen.Select(k => $"{k.Fingerprint} ({k.Type})"))}; {pinned}; refused. " +
              $"If the NAS's key changed on purpose, set host_key to the line from 'ssh-keyscan -p {_options.Port} {_options.Host}'";
    }

    private List<HostKey> ScanHostKeys()
    {
        try
        {
            var psi = new ProcessStartInfo("ssh-keyscan") { RedirectStandardOutput = true, RedirectStandardError = true, UseShellExecute = false };
            foreach (var a in new[] { "-T", "5", "-p", _options.Port.ToString(CultureInfo.InvariantCulture), _options.Host })
            {
                psi.ArgumentList.Add(a);
            }

            using var p = Process.Start(psi)!;
            _ = p.StandardError.ReadToEndAsync();
            var output = p.StandardOutput.ReadToEnd();
            p.WaitForExit(15_000);
            return output.Split('\n').Where(l => !l.StartsWith('#')).Select(HostKey.Parse).OfType<HostKey>().ToList();
        }
        catch (System.ComponentModel.Win32Exception)
        {
            return [];
        }
    }
}
