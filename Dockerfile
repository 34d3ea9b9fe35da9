# syntax=docker/dockerfile:1
# Synchro Bridge: PostgreSQL logical replication -> MassTransit/RabbitMQ change sets.

# ---- build -------------------------------------------------------------------
FROM mcr.microsoft.com/dotnet/sdk:10.0 AS build
WORKDIR /src

# Restore inputs first, so the (slow) restore layer is reused until a project
# file or the central package versions change. .editorconfig and the props are
# needed too: analyzers and TreatWarningsAsErrors run during the build.
COPY global.json Directory.Build.props Directory.Packages.props .editorconfig Synchro.sln ./
COPY src/Synchro.Contracts/*.csproj src/Synchro.Contracts/
COPY src/Synchro.Bridge/*.csproj src/Synchro.Bridge/
RUN dotnet restore src/Synchro.Bridge/Synchro.Bridge.csproj

# Sources last: editing code only invalidates the layers from here on.
COPY src/ src/
# Framework-dependent publish; no apphost because the image starts it with `dotnet`.
RUN dotnet publish src/Synchro.Bridge/Synchro.Bridge.csproj -c Release -o /app --no-restore -p:UseAppHost=false

# ---- runtime -----------------------------------------------------------------
# ASP.NET Core's runtime: the bridge serves /health/live, /health/ready and /metrics with Kestrel.
FROM mcr.microsoft.com/dotnet/aspnet:10.0 AS runtime
WORKDIR /app
COPY --from=build /app ./

# Health and Prometheus metrics on every interface of the container (the default is loopback only).
ENV Synchro__Http__Urls=http://0.0.0.0:9464
EXPOSE 9464

# Run as the non-root user the .NET images provide (APP_UID is set by the base image).
USER $APP_UID

# ENTRYPOINT is the program, CMD the default subcommand: `docker run <image> health`
# (or the compose healthcheck) reuses the same binary with another subcommand.
ENTRYPOINT ["dotnet", "synchro-bridge.dll"]
CMD ["run"]
