using System.Diagnostics;
using System.Text;
using System.Text.RegularExpressions;
using Backstop.Core.Plugins;

namespace Backstop.Sources.Postgres;

/// <summary>
/// <c>pg_restore --list</c> on the dump as it streams (and on the stored copy in <c>verify --deep</c>): it must be a
/// custom-format archive whose table of contents lists the tables the server reported.
/// </summary>
internal sealed partial class DumpValidator(string source, IReadOnlyDictionary<string, string> configured, PostgresTools? resolved) : IArtifactValidator
{
    [GeneratedRegex(@"^\d+; \d+ \d+ TABLE (?!DATA )", RegexOptions.Multiline)]
    private static partial Regex TableEntry();

    public async Task<IReadOnlyDictionary<string, long>> ReadFactsAsync(Stream content, CancellationToken cancellationToken)
    {
        var tools = resolved ?? await PostgresTools.ResolveAsync(source, configured, cancellationToken).ConfigureAwait(false);
        var psi = new ProcessStartInfo(tools.PgRestore)
        {
            RedirectStandardInput = true,
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            UseShellExecute = false,
        };
        psi.ArgumentList.Add("--list");
        using var process = Process.Start(psi) ?? throw new BackupException($"cannot start {tools.PgRestore}");
        var stdout = process.StandardOutput.ReadToEndAsync(cancellationToken);
        var stderr = process.StandardError.ReadToEndAsync(cancellationToken);
        try
        {
            await content.CopyToAsync(process.StandardInput.BaseStream, cancellationToken).ConfigureAwait(false);
            process.StandardInput.Close();
        }
        catch (IOException)
        {
            // pg_restore --list stops reading once it has the table of contents: the rest of the stream is not its business.
        }

        await process.WaitForExitAsync(cancellationToken).ConfigureAwait(false);
        var list = await stdout.ConfigureAwait(false);
        if (process.ExitCode != 0)
        {
            throw new BackupException($"pg_restore --list refused it: {(await stderr.ConfigureAwait(false)).Trim().ReplaceLineEndings(" | ")}");
        }

        return new Dictionary<string, long> { ["tables"] = TableEntry().Count(list) };
    }
}

/// <summary><c>globals.sql</c> must be whole (pg_dumpall's closing line) and create the roles the server has.</summary>
internal sealed class GlobalsValidator : IArtifactValidator
{
    private const string Trailer = "PostgreSQL database cluster dump complete";

    public async Task<IReadOnlyDictionary<string, long>> ReadFactsAsync(Stream content, CancellationToken cancellationToken)
    {
        using var reader = new StreamReader(content, Encoding.UTF8, leaveOpen: true);
        long roles = 0;
        var complete = false;
        while (await reader.ReadLineAsync(cancellationToken).ConfigureAwait(false) is { } line)
        {
            if (line.StartsWith("CREATE ROLE ", StringComparison.Ordinal))
            {
                roles++;
            }

            complete |= line.Contains(Trailer, StringComparison.Ordinal);
        }

        return complete
            ? new Dictionary<string, long> { ["roles"] = roles }
            : throw new BackupException($"globals.sql does not end with pg_dumpall's '{Trailer}' line: it is cut short");
    }
}
