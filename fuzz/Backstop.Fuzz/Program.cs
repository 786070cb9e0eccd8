// Backstop's fuzz harness (SharpFuzz under AFL). Usage:
//   dotnet Backstop.Fuzz.dll TARGET          one input on stdin per run, in AFL's persistent mode (fuzz/run.sh starts it)
//   dotnet Backstop.Fuzz.dll --seeds DIR     writes every target's seed inputs into DIR/TARGET/
//   dotnet Backstop.Fuzz.dll --replay FILE TARGET   one input from a file (what a crash found does), its outcome printed
using Backstop.Fuzz;

if (args is ["--seeds", var dir])
{
    foreach (var (target, file, bytes) in FuzzTargets.Seeds())
    {
        Directory.CreateDirectory(Path.Combine(dir, target));
        File.WriteAllBytes(Path.Combine(dir, target, file), bytes);
        Console.WriteLine($"{target}/{file}: {bytes.Length} bytes, {(FuzzTargets.Run(target, bytes) ? "accepted" : "REFUSED (a seed must be valid)")}");
    }

    return 0;
}

if (args is ["--replay", var input, var which])
{
    Console.WriteLine(FuzzTargets.Run(which, File.ReadAllBytes(input)) ? "accepted" : "refused");
    return 0;
}

if (args is not [var name] || !FuzzTargets.Names.Contains(name))
{
    Console.Error.WriteLine($"usage: Backstop.Fuzz TARGET | --seeds DIR | --replay FILE TARGET; targets: {string.Join(", ", FuzzTargets.Names)}");
    return 2;
}

SharpFuzz.Fuzzer.OutOfProcess.Run(stream =>
{
    using var buffer = new MemoryStream();
    stream.CopyTo(buffer);
    FuzzTargets.Run(name, buffer.ToArray());
});
return 0;
