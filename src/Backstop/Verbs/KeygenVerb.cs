using Backstop.Cli.Rendering;
using Backstop.Core.Config;
using Backstop.Core.Sealing.Age;

namespace Backstop.Cli.Verbs;

/// <summary><c>backstop keygen -o FILE</c>: a new X25519 identity in age's identity-file format, readable by age itself.</summary>
internal static class KeygenVerb
{
    public static int Execute(Context context, string output)
    {
        var path = Path.GetFullPath(output);
        var identity = X25519Identity.Generate();
        try
        {
            // Created 0600 from the first byte, and never over an existing key (that would lose every backup made with it).
            using var file = new FileStream(path, new FileStreamOptions
            {
                Mode = FileMode.CreateNew,
                Access = FileAccess.Write,
                UnixCreateMode = UnixFileMode.UserRead | UnixFileMode.UserWrite,
            });
            var text = System.Text.Encoding.ASCII.GetBytes(identity.ToFileText(DateTimeOffset.UtcNow));
            file.Write(text);
            file.Flush(flushToDisk: true);
        }
        catch (IOException) when (File.Exists(path))
        {
            throw new ConfigException($"--output {output}: the file exists; keygen never overwrites a key (backups made with it would be lost): choose another name");
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            throw new ConfigException($"--output {output}: cannot create it: {e.Message}");
        }

        if (context.Json)
        {
            JsonOutput.Write(new { Recipient = identity.PublicKey, IdentityFile = path });
        }
        else
        {
            Console.Error.WriteLine($"backstop: identity written to {path} (keep it safe and apart from the backups; without it nothing encrypted can be restored)");
            Console.WriteLine(identity.PublicKey);
        }

        return ExitCodes.Ok;
    }
}
