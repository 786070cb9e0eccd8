using System.CommandLine;
using Backstop.Cli.Rendering;
using Backstop.Core.Config;
using Backstop.Core.Sealing.Age;

namespace Backstop.Cli.Verbs;

/// <summary><c>backstop keygen -o FILE</c>: a new X25519 identity in age's identity-file format, readable by age itself.</summary>
internal static class KeygenVerb
{
    /// <summary>The <c>keygen</c> command: its arguments and options, and what it runs.</summary>
    internal static Command Declare()
    {
        var keygenOutput = new Option<string>("--output", "-o") { Description = "The identity file to write (created 0600, never overwritten)", HelpName = "FILE", Required = true };
        var keygen = new Command("keygen", "Make an age identity for encryption: writes the secret key file and prints its recipient (age1…)")
        {
            keygenOutput
        };
        keygen.SetAction((p, ct) => Task.FromResult(KeygenVerb.Execute(Context.From(p), p.GetValue(keygenOutput)!)));
        return keygen;
    }

    public static int Execute(Context context, string output)
    {
        var path = Path.GetFullPath(output);
        var identity = X25519Identity.Generate();
        FileStream file;
        try
        {
            // Created 0600 from the first byte, and never over an existing key (that would lose every backup made with it).
            file = new FileStream(path, new FileStreamOptions
            {
                Mode = FileMode.CreateNew,
                Access = FileAccess.Write,
                UnixCreateMode = UnixFileMode.UserRead | UnixFileMode.UserWrite,
            });
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException && Directory.Exists(path))
        {
            throw new ConfigException($"--output {output}: that is a folder; name the key file to create (for example {Path.Combine(output, "backstop-key.txt")})");
        }
        catch (IOException) when (File.Exists(path))
        {
            throw new ConfigException($"--output {output}: the file exists; keygen never overwrites a key (backups made with it would be lost): choose another name");
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            throw new ConfigException($"--output {output}: cannot create it: {e.Message}");
        }

        try
        {
            using (file)
            {
                file.Write(System.Text.Encoding.ASCII.GetBytes(identity.ToFileText(DateTimeOffset.UtcNow)));
                file.Flush(flushToDisk: true);
            }
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            File.Delete(path); // ours, just made: half a key must not look like one
            throw new Core.Plugins.BackupException($"cannot write the key to {path}: {e.Message}; nothing was kept");
        }

        if (context.Json)
        {
            JsonOutput.Write(new KeygenDocument(identity.PublicKey, path));
        }
        else
        {
            Console.Error.WriteLine($"backstop: identity written to {path} (keep it safe and apart from the backups; without it nothing encrypted can be restored)");
            Console.WriteLine(identity.PublicKey);
        }

        return ExitCodes.Ok;
    }
}
