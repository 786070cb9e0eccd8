namespace Backstop.IntegrationTests.Support;

/// <summary>Small configurations for the tests: one local target under the sandbox.</summary>
public static class Yaml
{
    public static string LocalTarget(string path = "./backups") =>
        $"catalog: ./state/catalog.db\nstaging: ./state/staging\npolicy: {{ min_copies: 1, rpo: 24h }}\ntargets:\n  - {{ name: local, kind: local, path: {path} }}\n";

    public static string Command(string name, string script, string extra = "") =>
        $"  - {{ name: {name}, kind: command, command: [/bin/sh, -c, \"{script}\"], artifact: dump.out{extra} }}\n";
}
