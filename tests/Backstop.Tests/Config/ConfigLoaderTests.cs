using Backstop.Core.Config;
using Backstop.Sources.Command;
using Backstop.Sources.Files;
using Backstop.Tests.Support;

namespace Backstop.Tests.Config;

public class ConfigLoaderTests
{
    private static BackstopConfig Parse(string yaml) => ConfigLoader.Parse(yaml, "/etc/backstop/backstop.yaml", new TestPlugins().Registry);

    private static ConfigException Fails(string yaml) => Assert.Throws<ConfigException>(() => Parse(yaml));

    private const string Valid = """
        catalog: ./state/catalog.db
        policy: { min_copies: 1, rpo: 6h }
        targets:
          - { name: local, kind: local, path: /var/backups/backstop }
        sources:
          - name: app-files
            kind: files
            paths: [/srv/app, data]
            exclude: ["*.log"]
            expect: { min_bytes: 150KB, min_files: 10, max_shrink: 50% }
          - name: dump
            kind: command
            command: [pg_dump, -Fc, app]
            env: { PGPASSWORD: "env:PGPASSWORD" }
            timeout: 15m
            rpo: 1h
        """;

    [Fact]
    public void With_a_shared_catalog_a_folder_on_one_machine_takes_copies_only_from_that_machines_sources()
    {
        var e = Fails("""
            catalog: {url: "postgresql://u@h/db"}
            targets:
              - { name: disk-a, kind: local, machine: a, path: /var/backups/a }
            sources:
              - { name: mine, kind: command, machine: a, command: [echo, x], targets: [disk-a] }
              - { name: theirs, kind: command, machine: b, command: [echo, x], targets: [disk-a] }
            """);
        Assert.Equal(["/etc/backstop/backstop.yaml:6:5: source 'theirs' runs on machine 'b' and cannot write to target 'disk-a', a folder on machine 'a'; use a target it reaches (sftp, s3, rclone) or one on its own machine"],
            e.Errors.Select(x => x.Message));
    }

    [Fact]
    public void A_shared_catalog_is_a_postgresql_url_with_its_tls_settings_and_a_password_kept_out_of_it()
    {
        var c = Parse(Valid.Replace("catalog: ./state/catalog.db",
            "catalog: {url: \"postgresql://backstop@db.lan:6543/fleet?sslmode=verify-full&sslrootcert=/etc/ssl/ca.pem\", password: env:CAT_PW, default_machine: vps1}", StringComparison.Ordinal)
            .Replace("kind: local,", "kind: local, machine: vps1,", StringComparison.Ordinal));
        var server = c.CatalogServer!;
        Assert.Equal(("db.lan", 6543, "backstop", "fleet"), (server.Server.Host, server.Server.Port, server.Server.User, server.Server.Database));
        Assert.Equal("verify-full", server.Server.Query["sslmode"]);
        Assert.Equal("/etc/ssl/ca.pem", server.Server.Query["sslrootcert"]);
        Assert.Equal("env:CAT_PW", server.Password!.Reference);
        Assert.Equal("vps1", c.DefaultMachine);
        Assert.Equal("postgresql://backstop@db.lan:6543/fleet", c.CatalogName);
        Assert.Equal("/etc/backstop/state/catalog.db", c.CatalogPath); // local state stays beside the configuration
        var pod = Parse(Valid.Replace("catalog: ./state/catalog.db", "catalog: {url: \"postgresql://b@db/b\", default_machine: vps1}\nstaging: /var/lib/backstop/staging", StringComparison.Ordinal)
            .Replace("kind: local,", "kind: local, machine: vps1,", StringComparison.Ordinal));
        Assert.Equal("/var/lib/backstop/catalog.db.lock", pod.LockPath); // beside staging: the configuration's folder may be a read-only mount
        Assert.Null(Parse(Valid).CatalogServer);
    }

    [Theory]
    [InlineData("{url: \"postgresql://u:pw@h/db\"}", "backstop.yaml:1:16: catalog.url: leave the password out of the URI")]
    [InlineData("{url: \"mysql://u:pw@h/db\"}", "catalog.url: mysql://u@h/db: name a server like postgresql://")]
    [InlineData("{url: \"postgresql://u:pw@ss@h:99999/db\"}", "catalog.url: postgresql://u@h:99999/db: name a server like postgresql://")]
    [InlineData("{url: \"postgresql://u@h\"}", "catalog.url: name the database, like")]
    [InlineData("{url: \"postgresql://u@h/db?sslmode=sometimes\"}", "sslmode 'sometimes' is not one of disable, allow, prefer, require, verify-ca, verify-full")]
    [InlineData("{url: \"postgresql://u@h/db?password=x\"}", "'password' is not a setting here")]
    [InlineData("{password: env:X}", "catalog.password goes with catalog.url")]
    [InlineData("{default_machine: vps1}", "default_machine only applies to a shared catalog")]
    [InlineData("{path: ./c.db, url: \"postgresql://u@h/db\"}", "give catalog.url or catalog.path, not both")]
    [InlineData("\"postgresql://u@h/db\"", "a catalog on a server is a mapping")]
    [InlineData("{url: \"postgresql://u@h/db\"}", "with a shared catalog (catalog.url), a 'local' target names the machine whose folder it is (machine: NAME)")]
    public void A_wrong_shared_catalog_is_refused_where_it_is_written(string catalog, string message)
    {
        var e = Fails(Valid.Replace("catalog: ./state/catalog.db", "catalog: " + catalog, StringComparison.Ordinal));
        Assert.Contains(message, e.Message, StringComparison.Ordinal);
        Assert.DoesNotContain(":pw@", e.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void A_valid_configuration_is_read_with_paths_relative_to_the_file()
    {
        var c = Parse(Valid);
        Assert.Equal("/etc/backstop/state/catalog.db", c.CatalogPath);
        Assert.Equal("/etc/backstop/state/staging", c.StagingPath);
        Assert.Equal(TimeSpan.FromHours(6), c.Policy.Rpo);
        var files = c.Sources[0];
        Assert.Equal(150_000, files.Expect.MinBytes);
        Assert.Equal(10, files.Expect.MinFacts["files"]);
        Assert.Equal(50, files.Expect.MaxShrinkPercent);
        Assert.Equal(["/srv/app", "/etc/backstop/data"], ((FilesOptions)files.Options).Paths);
        Assert.Equal(TimeSpan.FromHours(6), files.Rpo);
        var dump = (CommandOptions)c.Sources[1].Options;
        Assert.Equal(TimeSpan.FromMinutes(15), dump.Timeout);
        Assert.Equal("env:PGPASSWORD", dump.Environment[0].Value.ToString());
        Assert.Equal(TimeSpan.FromHours(1), c.Sources[1].Rpo);
    }

    [Fact]
    public void An_unknown_key_names_file_line_column_and_a_suggestion()
    {
        var e = Fails(Valid.Replace("    exclude:", "    exlude:", StringComparison.Ordinal));
        Assert.StartsWith("/etc/backstop/backstop.yaml:9:5: sources[0].exlude: unknown key (did you mean 'exclude'?)", e.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void A_wrong_type_is_refused_where_it_is()
    {
        var e = Fails(Valid.Replace("paths: [/srv/app, data]", "paths: {a: b}", StringComparison.Ordinal));
        Assert.Contains("backstop.yaml:8:12: sources[0].paths: expected a list of strings", e.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void A_bad_size_is_refused_where_it_is()
    {
        var e = Fails(Valid.Replace("150KB", "1.5.0KB", StringComparison.Ordinal));
        Assert.Contains("backstop.yaml:10:26: sources[0].expect.min_bytes:", e.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void A_bad_duration_is_refused_where_it_is()
    {
        var e = Fails(Valid.Replace("rpo: 6h", "rpo: 6 hours", StringComparison.Ordinal));
        Assert.Contains("backstop.yaml:2:31: policy.rpo: '6 hours' has an unknown unit", e.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void Duplicate_source_names_are_refused()
    {
        var e = Fails(Valid.Replace("name: dump", "name: app-files", StringComparison.Ordinal));
        Assert.Contains("a source named 'app-files' is already defined", e.Message, StringComparison.Ordinal);
        Assert.Contains(":11:11:", e.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void An_expectation_on_a_fact_the_kind_does_not_report_is_refused()
    {
        var e = Fails(Valid.Replace("min_files: 10", "min_tables: 10", StringComparison.Ordinal));
        Assert.Contains("sources[0].expect.min_tables: unknown key", e.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void Unknown_kinds_list_the_known_ones()
    {
        var e = Fails(Valid.Replace("kind: files", "kind: filez", StringComparison.Ordinal));
        Assert.Contains("unknown source kind 'filez'; known kinds: command, files, sqlite", e.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void Min_copies_above_the_number_of_targets_is_refused()
    {
        var e = Fails(Valid.Replace("min_copies: 1", "min_copies: 2", StringComparison.Ordinal));
        Assert.Contains("min_copies is 2 but the source has only 1 target(s)", e.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void Invalid_yaml_names_where_it_breaks()
    {
        var e = Fails("targets:\n  - { name: local, kind: local\nsources: []\n");
        Assert.Contains("backstop.yaml:2:3:", e.Message, StringComparison.Ordinal);
        Assert.Contains("invalid YAML", e.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void A_source_name_that_cannot_be_a_folder_is_refused()
    {
        var e = Fails(Valid.Replace("name: dump", "name: ../dump", StringComparison.Ordinal));
        Assert.Contains("'../dump' is not a valid source name", e.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void A_source_naming_an_unknown_target_is_refused()
    {
        var e = Fails(Valid.Replace("rpo: 1h", "rpo: 1h\n    targets: [nas]", StringComparison.Ordinal));
        Assert.Contains("no target is named 'nas'", e.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void A_command_must_be_an_argument_list()
    {
        var e = Fails(Valid.Replace("command: [pg_dump, -Fc, app]", "command: []", StringComparison.Ordinal));
        Assert.Contains("sources[1].command: a command is required", e.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void Secret_references_are_read_only_when_resolved_and_never_printed()
    {
        var c = Parse(Valid);
        var secret = ((CommandOptions)c.Sources[1].Options).Environment[0].Value;
        Environment.SetEnvironmentVariable("PGPASSWORD", null);
        var e = Assert.Throws<ConfigException>(secret.Resolve);
        Assert.Contains("environment variable PGPASSWORD, which is not set", e.Message, StringComparison.Ordinal);
        Assert.Equal("(inline secret)", new SecretRef("hunter2", default).ToString());
    }

    [Fact]
    public void A_target_listed_twice_for_one_source_is_refused()
    {
        var e = Fails(Valid.Replace("rpo: 1h", "rpo: 1h\n    targets: [local, local]", StringComparison.Ordinal));
        Assert.Contains("a target is listed twice", e.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void A_bad_exclude_pattern_is_a_configuration_error()
    {
        var e = Fails(Valid.Replace("exclude: [\"*.log\"]", "exclude: [\"[z-a]\"]", StringComparison.Ordinal));
        Assert.Contains("sources[0].exclude: a pattern is not valid", e.Message, StringComparison.Ordinal);
    }

    [Theory]
    [InlineData("0s")]
    [InlineData("30d")]
    public void A_command_timeout_out_of_range_is_refused(string timeout)
    {
        var e = Fails(Valid.Replace("timeout: 15m", $"timeout: {timeout}", StringComparison.Ordinal));
        Assert.Contains("sources[1].timeout: must be longer than zero and at most 24d", e.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void A_huge_duration_is_an_error_not_a_crash()
    {
        var e = Fails(Valid.Replace("rpo: 6h", "rpo: 20000000w", StringComparison.Ordinal));
        Assert.Contains("too large", e.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void An_smtp_password_without_tls_is_refused_at_its_line()
    {
        var e = Fails(Valid + "\nnotify:\n  - { kind: email, host: mail.lan, security: none, from: b@example.org, to: [ops@example.org], user: b, password: \"env:SMTP_PASSWORD\" }\n");
        Assert.Contains("a password is never sent without TLS", e.Message, StringComparison.Ordinal);
        Assert.Contains("backstop.yaml:", e.Message, StringComparison.Ordinal);
    }
}
