namespace Backstop.Core.Catalog;

/// <summary>A file of a source's continuous archive as recorded: what it covers, its content's SHA-256, and its copies.</summary>
public sealed record ArchiveInfo(string Source, string Name, string Folder, long Start, long End, long RawBytes, string Sha256, string StoredFile, DateTimeOffset At,
    IReadOnlyList<CopyInfo> Copies)
{
    /// <summary>The stored size on each target (what a quick verify compares).</summary>
    public IReadOnlyDictionary<string, long> StoredBytes { get; init; } = new Dictionary<string, long>();

    /// <summary>The content of a small file that places nothing (a timeline history), kept for the archive's lineage; else null.</summary>
    public string? Detail { get; init; }

    /// <summary>Files this small that place nothing keep their content in the catalog.</summary>
    public const int DetailLimit = 64 << 10;

    public Plugins.ArchiveFile AsFile() => new(Folder, Name, Start, End, At) { Detail = Detail };
}

public sealed partial class CatalogStore
{
    /// <summary>Records an archive file (once; a second push of the same content keeps the first record) and its copies.</summary>
    public void RecordArchive(ArchiveInfo file)
    {
        ArgumentNullException.ThrowIfNull(file);
        using var tx = Begin();
        using (var cmd = Command(
                   """
                   INSERT INTO archive(source, name, folder, start_pos, end_pos, raw_bytes, sha256, stored_file, at, detail) VALUES (@s, @n, @f, @st, @e, @r, @h, @sf, @at, @d)
                   ON CONFLICT(source, name) DO UPDATE SET stored_file = excluded.stored_file, detail = coalesce(archive.detail, excluded.detail)
                   """,
                   ("@s", file.Source), ("@n", file.Name), ("@f", file.Folder), ("@st", file.Start), ("@e", file.End), ("@r", file.RawBytes), ("@h", file.Sha256),
                   ("@sf", file.StoredFile), ("@at", Time(file.At)), ("@d", file.Detail)))
        {
            cmd.ExecuteNonQuery();
        }

        foreach (var c in file.Copies)
        {
            SetArchiveCopy(file.Source, file.Name, c, -1);
        }

        tx.Commit();
    }

    /// <summary>One copy of an archive file on a target (its stored size, when known).</summary>
    public void SetArchiveCopy(string source, string name, CopyInfo copy, long storedBytes)
    {
        ArgumentNullException.ThrowIfNull(copy);
        using var cmd = Command(
            """
            INSERT INTO archive_copies(source, name, target, stored_bytes, state, checked_at, error) VALUES (@s, @n, @t, CASE WHEN @b > 0 THEN @b ELSE 0 END, @st, @c, @e)
            ON CONFLICT(source, name, target) DO UPDATE SET stored_bytes = CASE WHEN @b >= 0 THEN @b ELSE archive_copies.stored_bytes END,
                state = excluded.state, checked_at = excluded.checked_at, error = excluded.error
            """,
            ("@s", source), ("@n", name), ("@t", copy.Target), ("@b", storedBytes), ("@st", copy.State.ToString().ToLowerInvariant()), ("@c", Time(copy.CheckedAt)),
            ("@e", copy.Error));
        cmd.ExecuteNonQuery();
    }

    /// <summary>Forgets one copy of an archive file (pruned); the file's record goes with its last copy.</summary>
    public void DeleteArchiveCopy(string source, string name, string target)
    {
        using var tx = Begin();
        using (var cmd = Command("DELETE FROM archive_copies WHERE source = @s AND name = @n AND target = @t", ("@s", source), ("@n", name), ("@t", target)))
        {
            cmd.ExecuteNonQuery();
        }

        using (var cmd = Command("DELETE FROM archive WHERE source = @s AND name = @n AND NOT EXISTS (SELECT 1 FROM archive_copies c WHERE c.source = @s AND c.name = @n)",
                   ("@s", source), ("@n", name)))
        {
            cmd.ExecuteNonQuery();
        }

        tx.Commit();
    }

    /// <summary>A source's archive files (in name order, which is the order of the positions within a timeline), with their copies.</summary>
    public IReadOnlyList<ArchiveInfo> Archive(string source, string? name = null)
    {
        var copies = new Dictionary<string, List<CopyInfo>>(StringComparer.Ordinal);
        var sizes = new Dictionary<string, Dictionary<string, long>>(StringComparer.Ordinal);
        using (var cmd = Command("SELECT name, target, state, checked_at, error, stored_bytes FROM archive_copies WHERE source = @s AND (CAST(@n AS TEXT) IS NULL OR name = @n) ORDER BY target",
                   ("@s", source), ("@n", name)))
        using (var r = cmd.ExecuteReader())
        {
            while (r.Read())
            {
                if (!copies.TryGetValue(r.GetString(0), out var list))
                {
                    copies[r.GetString(0)] = list = [];
                }

                list.Add(new CopyInfo(r.GetString(1), Enum.Parse<CopyState>(r.GetString(2), ignoreCase: true), ParseTime(r.GetString(3)), Str(r, 4)));
                if (!sizes.TryGetValue(r.GetString(0), out var bySize))
                {
                    sizes[r.GetString(0)] = bySize = new(StringComparer.Ordinal);
                }

                bySize[r.GetString(1)] = r.GetInt64(5);
            }
        }

        using var q = Command(
            "SELECT name, folder, start_pos, end_pos, raw_bytes, sha256, stored_file, at, detail FROM archive WHERE source = @s AND (CAST(@n AS TEXT) IS NULL OR name = @n) ORDER BY folder, name",
            ("@s", source), ("@n", name));
        using var rows = q.ExecuteReader();
        var result = new List<ArchiveInfo>();
        while (rows.Read())
        {
            var n = rows.GetString(0);
            result.Add(new ArchiveInfo(source, n, rows.GetString(1), rows.GetInt64(2), rows.GetInt64(3), rows.GetInt64(4), rows.GetString(5), rows.GetString(6),
                ParseTime(rows.GetString(7)), copies.GetValueOrDefault(n) ?? []) { StoredBytes = sizes.GetValueOrDefault(n) ?? [], Detail = Str(rows, 8) });
        }

        return result;
    }

    /// <summary>Records a recovery marker written into the source (what a drill recovers to and then looks for).</summary>
    public void RecordMarker(string source, Plugins.RecoveryMarker marker)
    {
        ArgumentNullException.ThrowIfNull(marker);
        using var cmd = Command("""
            INSERT INTO markers(source, seq, position, label, at) VALUES (@s, @q, @p, @l, @at)
            ON CONFLICT (source, seq) DO UPDATE SET position = excluded.position, label = excluded.label, at = excluded.at
            """,
            ("@s", source), ("@q", marker.Seq), ("@p", marker.Position), ("@l", marker.Label), ("@at", Time(marker.At)));
        cmd.ExecuteNonQuery();
    }

    /// <summary>A source's recovery markers, oldest first.</summary>
    public IReadOnlyList<Plugins.RecoveryMarker> Markers(string source)
    {
        using var cmd = Command("SELECT seq, position, label, at FROM markers WHERE source = @s ORDER BY seq", ("@s", source));
        using var r = cmd.ExecuteReader();
        var list = new List<Plugins.RecoveryMarker>();
        while (r.Read())
        {
            list.Add(new Plugins.RecoveryMarker(r.GetInt64(0), r.GetInt64(1), r.GetString(2), ParseTime(r.GetString(3))));
        }

        return list;
    }

    /// <summary>Forgets the markers before a position (the archive no longer reaches them).</summary>
    public void DeleteMarkersBefore(string source, long position)
    {
        using var cmd = Command("DELETE FROM markers WHERE source = @s AND position < @p", ("@s", source), ("@p", position));
        cmd.ExecuteNonQuery();
    }
}
