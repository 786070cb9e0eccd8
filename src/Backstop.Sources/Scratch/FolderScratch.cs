using Backstop.Core.Plugins;

namespace Backstop.Sources.Scratch;

/// <summary>
/// A drill's scratch place that is a folder inside the drill's own scratch folder (files, sqlite, command, and the
/// kinds whose stored file a scratch server then loads). The runner removes the folder; <paramref name="stop"/> stops
/// what the kind started on top of it.
/// </summary>
public sealed class FolderScratch(string description, string folder, Func<CancellationToken, Task<IReadOnlyList<DrillCheck>>> check,
    IReadOnlyDictionary<string, string>? tools = null, Func<CancellationToken, Task>? load = null, Func<ValueTask>? stop = null) : IDrillScratch
{
    /// <summary>Makes <c>SCOPE/NAME</c> (0700) and returns it.</summary>
    public static string Create(DrillScope scope, string name)
    {
        ArgumentNullException.ThrowIfNull(scope);
        var path = Path.Combine(scope.Folder, name);
        Directory.CreateDirectory(path, UnixFileMode.UserRead | UnixFileMode.UserWrite | UnixFileMode.UserExecute);
        return path;
    }

    public string Description => description;

    public IReadOnlyDictionary<string, string> Tools { get; } = tools ?? new Dictionary<string, string>();

    /// <summary>The folder itself, with a trailing '/': a file-shaped artifact lands as FOLDER/NAME.</summary>
    public string Destination(string artifact) => Path.EndsInDirectorySeparator(folder) ? folder : folder + "/";

    public Task LoadAsync(CancellationToken cancellationToken) => load?.Invoke(cancellationToken) ?? Task.CompletedTask;

    public Task<IReadOnlyList<DrillCheck>> CheckAsync(CancellationToken cancellationToken) => check(cancellationToken);

    public ValueTask DisposeAsync() => stop?.Invoke() ?? ValueTask.CompletedTask;
}
