using System.Globalization;
using Backstop.Core.Config;
using Backstop.Core.Plugins;
using Backstop.Sources.Scratch;

namespace Backstop.Sources.CouchDb;

/// <summary><c>drill: {server: http://host:5984}</c>: where the scratch databases go (by default the source's own server).</summary>
public sealed record CouchDbDrillOptions(Uri? Server);

public sealed partial class CouchDbSourceKind
{
    public override CouchDbDrillOptions? ParseDrill(ConfigMap map)
    {
        ArgumentNullException.ThrowIfNull(map);
        return new CouchDbDrillOptions(map.ServerUrl("server", "http://127.0.0.1:5984"));
    }
}

/// <summary>
/// A CouchDB drill: each database's documents go into a scratch database with a random name
/// (<c>backstop_drill_TOKEN_N</c>) on the source's server or the drill server, through the restore's own path
/// (<c>_bulk_docs</c> with <c>new_edits: false</c>); documents are counted and compared; the scratch databases are
/// deleted afterwards (and by the next drill, if this one is killed).
/// </summary>
internal sealed class CouchDbDrill(CouchDbServer source, CouchDbDrillOptions? drillOptions) : IDrillable
{

    private Uri DrillServer => drillOptions?.Server ?? source.Options.Url;

    public async Task<IDrillScratch> OpenScratchAsync(DrillScope scope, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(scope);
        var server = source.At(DrillServer);
        await server.VersionAsync(cancellationToken).ConfigureAwait(false); // reachable, credentials accepted
        var names = new Dictionary<string, string>(StringComparer.Ordinal);
        using var http = server.Client();
        var i = 0;
        foreach (var artifact in scope.Artifacts)
        {
            var scratch = $"backstop_drill_{scope.Token}_{i++}";
            if (await server.GetRawAsync(http, "/" + scratch, cancellationToken).ConfigureAwait(false) is not null)
            {
                throw new BackupException($"source '{source.Source}': the server {server.Where} already has a database named {scratch}; drill again");
            }

            names[artifact.Name] = scratch;
            scope.Leave("db:" + scratch);
        }

        return new Scratch(server, names);
    }

    /// <summary>Deletes a scratch database a killed drill left.</summary>
    public async Task<string?> SweepAsync(string leftover, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(leftover);
        if (ScratchNames.ScratchDatabase(leftover) is not { } database)
        {
            return ScratchNames.NotOurs(source.Source, leftover);
        }

        var server = source.At(DrillServer);
        using var http = server.Client();
        using var deleted = await http.DeleteAsync(new Uri("/" + database, UriKind.Relative), cancellationToken).ConfigureAwait(false);
        return deleted.IsSuccessStatusCode || deleted.StatusCode == System.Net.HttpStatusCode.NotFound
            ? null
            : $"the scratch database {database} a killed drill left on {server.Where} could not be deleted: HTTP {(int)deleted.StatusCode}; delete it by hand";
    }


    private sealed class Scratch(CouchDbServer server, Dictionary<string, string> names) : IDrillScratch
    {
        public string Description => $"scratch databases backstop_drill_* on {server.Where}";

        public IReadOnlyDictionary<string, string> Tools { get; } = new Dictionary<string, string>();

        public string Destination(string artifact) => server.UrlOf(names[artifact]);

        public Task<IReadOnlyList<DrillCheck>> CheckAsync(CancellationToken cancellationToken) => Task.FromResult<IReadOnlyList<DrillCheck>>([]);

        public async ValueTask DisposeAsync()
        {
            using var http = server.Client();
            var failed = new List<string>();
            foreach (var database in names.Values)
            {
                using var deleted = await http.DeleteAsync(new Uri("/" + database, UriKind.Relative), CancellationToken.None).ConfigureAwait(false);
                if (!deleted.IsSuccessStatusCode && deleted.StatusCode != System.Net.HttpStatusCode.NotFound)
                {
                    failed.Add($"{database} (HTTP {((int)deleted.StatusCode).ToString(CultureInfo.InvariantCulture)})");
                }
            }

            if (failed.Count > 0)
            {
                throw new BackupException($"the scratch databases {string.Join(", ", failed)} on {server.Where} could not be deleted; delete them by hand");
            }
        }
    }
}
