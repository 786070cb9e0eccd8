using System.Text;
using Backstop.Core.Plugins;

namespace Backstop.Sources.Postgres;

/// <summary>
/// The dump's format check, on the dump as it streams (and on the stored copy in <c>verify --deep</c>): it must be a
/// custom-format archive read whole — its table of contents (the tables it creates) and every data block to its end
/// (<see cref="CustomDumpData"/>) — and its rows are counted from its own COPY data.
/// </summary>
internal sealed class DumpValidator : IArtifactValidator
{
    public async Task<IReadOnlyDictionary<string, long>> ReadFactsAsync(Stream content, CancellationToken cancellationToken)
    {
        var (toc, archive) = await CustomDumpHeader.ReadTocAsync(content, cancellationToken).ConfigureAwait(false);
        await using (archive)
        {
            if (toc is null)
            {
                throw new BackupException("it is not a pg_dump custom-format archive (its header or table of contents does not read as one)");
            }

            var facts = new Dictionary<string, long>(StringComparer.Ordinal) { ["tables"] = toc.Entries.Count(e => e.Desc == "TABLE") };
            if (toc.Compressed)
            {
                await archive.CopyToAsync(Stream.Null, cancellationToken).ConfigureAwait(false); // compressed data: not COPY text to count
            }
            else
            {
                facts["rows"] = await CustomDumpData.CountRowsAsync(archive, toc, cancellationToken).ConfigureAwait(false);
            }

            return facts;
        }
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
