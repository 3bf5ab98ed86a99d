#!/usr/bin/env bash
# rolling-upgrade.sh: rolls the compose cluster from one image to another,
# one service at a time, in the order of DESIGN.md §2.1: SCM, Recon,
# datanodes, OMs (after Apache Ozone's compose/upgrade rolling-upgrade
# driver). Each service is recreated with the new image and must report
# healthy before the next one goes; the others keep serving meanwhile.
#
#   rolling-upgrade.sh --from ozone-c:old --to ozone-c:new
#       [--om-order om2,om3,om1] [--timeout SECONDS] [--dry-run]
#
# --om-order: the order of the OMs; put the current OM leader last, so
# leadership moves once (DESIGN.md §8). --dry-run: print the steps and check with
# 'docker-compose config' (no engine needed) that after each step exactly
# the services rolled so far run the new image; scripts/validate-deploy runs
# it in CI. The cluster stays pre-finalized afterwards: finalizing is a
# separate, explicit step (docs/deployment.md).
set -euo pipefail
cd "$(dirname "$0")"

from="" to="" dry_run=0 timeout=300 om_order="om1,om2,om3"
while [ $# -gt 0 ]; do
  case "$1" in
    --from) from="$2"; shift ;;
    --to) to="$2"; shift ;;
    --om-order) om_order="$2"; shift ;;
    --timeout) timeout="$2"; shift ;;
    --dry-run) dry_run=1 ;;
    -h|--help) sed -n '2,17s/^# \{0,1\}//p' "$0"; exit 0 ;;
    *) echo "rolling-upgrade.sh: unknown option '$1'; see --help" >&2; exit 2 ;;
  esac
  shift
done
if [ -z "$from" ] || [ -z "$to" ]; then
  echo "rolling-upgrade.sh: --from and --to are required; see --help" >&2
  exit 2
fi

if docker compose version >/dev/null 2>&1; then
  compose=(docker compose)
else
  compose=(docker-compose)
fi
compose+=(-f docker-compose.yaml -f docker-compose.upgrade.yaml)

IFS=, read -r -a oms <<<"$om_order"
if [ "$(printf '%s\n' "${oms[@]}" | sort | tr '\n' ' ')" != "om1 om2 om3 " ]; then
  echo "rolling-upgrade.sh: --om-order '$om_order' must list om1, om2 and om3 once each" >&2
  exit 2
fi
order=(scm recon dn1 dn2 dn3 "${oms[@]}")
all=(scm recon dn1 dn2 dn3 om1 om2 om3)

var_of() { # service -> its image variable (docker-compose.upgrade.yaml)
  echo "OZONE_$(echo "$1" | tr '[:lower:]' '[:upper:]')_IMAGE"
}

for s in "${all[@]}"; do
  export "$(var_of "$s")=$from"
done

# Checks that the merged configuration gives each service its expected
# image: new for those in "$@", old for the rest.
check_images() {
  local conf s want got
  conf=$("${compose[@]}" config)
  for s in "${all[@]}"; do
    want=$from
    case " $* " in *" $s "*) want=$to ;; esac
    got=$(printf '%s\n' "$conf" | awk -v svc="  $s:" '
      $0 == svc {in_svc = 1; next}
      in_svc && /^  [^ ]/ {in_svc = 0}
      in_svc && $1 == "image:" {print $2; exit}')
    if [ "$got" != "$want" ]; then
      echo "rolling-upgrade.sh: service '$s' would run image '$got', expected '$want'" >&2
      return 1
    fi
  done
}

wait_healthy() {
  local s="$1" id status deadline=$((SECONDS + timeout))
  while [ $SECONDS -lt $deadline ]; do
    id=$("${compose[@]}" ps -q "$s")
    status=$(docker inspect -f '{{.State.Health.Status}}' "$id" 2>/dev/null || echo none)
    if [ "$status" = healthy ]; then
      return 0
    fi
    sleep 2
  done
  echo "rolling-upgrade.sh: '$s' is not healthy after ${timeout}s with image '$to';" \
       "the roll stops here (services before it run '$to', after it '$from')." \
       "Roll it back with: $(var_of "$s")=$from ${compose[*]} up -d --no-deps $s" >&2
  return 1
}

done_list=()
step=0
for s in "${order[@]}"; do
  step=$((step + 1))
  export "$(var_of "$s")=$to"
  done_list+=("$s")
  echo "step $step: $s -> $to: $(var_of "$s")=$to ${compose[*]} up -d --no-deps $s"
  if [ "$dry_run" = 1 ]; then
    check_images "${done_list[@]}"
    continue
  fi
  "${compose[@]}" up -d --no-deps "$s"
  wait_healthy "$s"
done
echo "rolling-upgrade.sh: every service runs '$to' (pre-finalized until you finalize)"
