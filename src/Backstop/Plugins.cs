using Backstop.Core.Plugins;
using Backstop.Sources.Command;
using Backstop.Sources.CouchDb;
using Backstop.Sources.Etcd;
using Backstop.Sources.Files;
using Backstop.Sources.Kubernetes;
using Backstop.Sources.MySql;
using Backstop.Sources.Postgres;
using Backstop.Sources.Redis;
using Backstop.Sources.Registry;
using Backstop.Sources.Sqlite;
using Backstop.Targets.Local;
using Backstop.Targets.Rclone;
using Backstop.Targets.S3;
using Backstop.Targets.Sftp;

namespace Backstop.Cli;

/// <summary>The one explicit list of source and target kinds this program knows.</summary>
internal static class Plugins
{
    public static PluginRegistry Registry { get; } = new(
        sources:
        [
            new FilesSourceKind(),
            new SqliteSourceKind(),
            new CommandSourceKind(),
            new PostgresSourceKind(),
            new MySqlSourceKind(),
            new RedisSourceKind(),
            new EtcdSourceKind(),
            new CouchDbSourceKind(),
            new RegistrySourceKind(),
            new KubernetesSourceKind(),
        ],
        targets:
        [
            new LocalTargetKind(),
            new S3TargetKind(),
            new SftpTargetKind(),
            new RcloneTargetKind(),
        ]);
}
