#!/usr/bin/env bash
# The kill -9 campaign on remote targets: `run` killed at random moments while uploading to SFTP (sshd, through rclone)
# and S3 (s3rver), `restore` and `drill` killed while reading from them; after each moment the catalog answers and every
# committed snapshot is whole; after the campaign one clean run leaves nothing on the targets that no committed snapshot
# owns, and verify --deep, a drill and a restore equal to the data pass. The test is
# tests/Backstop.IntegrationTests/KillCampaignTests.cs (the suite runs it with a few moments).
#
#   bench/killpoints.sh [MOMENTS] [SEED]     MOMENTS runs killed per target kind (default 30; a third as many
#                                            restores and drills); SEED replays a campaign (printed by each)
# Prints one line of results per target kind, for the campaign table in docs/failure-modes.md.
set -euo pipefail
cd "$(dirname "$0")/.."
moments="${1:-30}"
report="$(mktemp)"
trap 'rm -f "$report"' EXIT
dotnet build tests/Backstop.IntegrationTests -c Release --nologo -v quiet -clp:ErrorsOnly >/dev/null
start=$(date +%s)
CI=true BACKSTOP_KILL_MOMENTS="$moments" BACKSTOP_KILL_REPORT="$report" ${2:+BACKSTOP_KILL_SEED="$2"} \
  dotnet test tests/Backstop.IntegrationTests -c Release --no-build --nologo \
  --filter "FullyQualifiedName~KillCampaignTests" --logger "console;verbosity=normal" | grep -E "Passed|Failed|Error Message|seed" || true
echo "--- results ($(( $(date +%s) - start )) s)"
cat "$report"
[ "$(wc -l < "$report")" -eq 2 ] || { echo "a campaign failed: see above"; exit 1; }
