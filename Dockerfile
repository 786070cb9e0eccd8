# Backstop in a container: built with the .NET SDK, run on the ASP.NET runtime image with the field's own tools
# (pg_dump/pg_restore, mariadb-dump, redis-tools, etcd-client, zstd, age, rclone, tar), as a non-root user.
#   docker build --build-arg SDK_IMAGE=<the .NET 10 SDK image> --build-arg RUNTIME_IMAGE=<the ASP.NET Core 10 runtime image> -t backstop .
#   docker run --rm -v $PWD/backstop.yaml:/etc/backstop/backstop.yaml backstop status
# The base images are arguments: name them as your registry (or mirror) serves Microsoft's dotnet/sdk:10.0 and
# dotnet/aspnet:10.0 (Debian-based).
ARG SDK_IMAGE
ARG RUNTIME_IMAGE
FROM ${SDK_IMAGE} AS build
WORKDIR /src
COPY global.json Directory.Build.props Directory.Packages.props Backstop.slnx ./
COPY src/ src/
RUN dotnet publish src/Backstop/Backstop.csproj -c Release -o /app --nologo

FROM ${RUNTIME_IMAGE}
RUN apt-get update \
 && apt-get install -y --no-install-recommends postgresql-client mariadb-client redis-tools etcd-client zstd libzstd1 age rclone tar ca-certificates \
 && rm -rf /var/lib/apt/lists/* \
 && useradd --uid 10001 --create-home --shell /usr/sbin/nologin backstop \
 && mkdir -p /var/lib/backstop /etc/backstop && chown backstop:backstop /var/lib/backstop
COPY --from=build /app /opt/backstop
USER 10001
WORKDIR /var/lib/backstop
ENV BACKSTOP_CONFIG=/etc/backstop/backstop.yaml
EXPOSE 8080
ENTRYPOINT ["dotnet", "/opt/backstop/backstop.dll"]
CMD ["serve"]
