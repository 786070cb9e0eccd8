namespace Backstop.Core.Catalog;

/// <summary>One delivery of a notification: delivered, or failed after its attempts, with the error.</summary>
public sealed record NotificationInfo(DateTimeOffset At, string Notifier, string Event, string? Subject, bool Delivered, int Attempts, string? Error);

public sealed partial class CatalogStore
{
    /// <summary>The state a notifier was last told of, per subject (a source, "doctor"); null when never.</summary>
    public string? NotifiedState(string notifier, string subject)
    {
        using var cmd = Command("SELECT state FROM notify_state WHERE notifier = @n AND subject = @s", ("@n", notifier), ("@s", subject));
        return cmd.ExecuteScalar() as string;
    }

    public void SetNotifiedState(string notifier, string subject, string state, DateTimeOffset at)
    {
        using var cmd = Command(
            "INSERT INTO notify_state(notifier, subject, state, at) VALUES (@n, @s, @st, @a) ON CONFLICT(notifier, subject) DO UPDATE SET state = @st, at = @a",
            ("@n", notifier), ("@s", subject), ("@st", state), ("@a", Time(at)));
        cmd.ExecuteNonQuery();
    }

    public void AddNotification(NotificationInfo n)
    {
        ArgumentNullException.ThrowIfNull(n);
        using var cmd = Command("INSERT INTO notifications(at, notifier, event, subject, delivered, attempts, error) VALUES (@a, @n, @e, @s, @d, @t, @err)",
            ("@a", Time(n.At)), ("@n", n.Notifier), ("@e", n.Event), ("@s", n.Subject), ("@d", n.Delivered ? 1L : 0L), ("@t", (long)n.Attempts), ("@err", n.Error));
        cmd.ExecuteNonQuery();
    }

    /// <summary>Deliveries, newest first.</summary>
    public IReadOnlyList<NotificationInfo> Notifications(int limit = 200)
    {
        using var cmd = Command("SELECT at, notifier, event, subject, delivered, attempts, error FROM notifications ORDER BY id DESC LIMIT @l", ("@l", (long)limit));
        using var r = cmd.ExecuteReader();
        var list = new List<NotificationInfo>();
        while (r.Read())
        {
            list.Add(new NotificationInfo(ParseTime(r.GetString(0)), r.GetString(1), r.GetString(2), Str(r, 3), r.GetInt64(4) == 1, (int)r.GetInt64(5), Str(r, 6)));
        }

        return list;
    }
}
