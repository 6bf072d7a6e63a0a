#!/usr/bin/env bash
# Builds the default Annex image with the stack's EC2 Image Builder pipeline and prints its AMI id:
#
#   bash scripts/build-image.sh --stage prod [--region us-east-1]
#
# Uploads image/ (annex-boot, annex-agent, install.sh, …) to the stack's image assets bucket, starts
# the pipeline, waits for the image (about 20-30 minutes), and prints the AMI id. The pipeline's
# distribution writes it to the SSM parameter the stack's default image reads
# (resolve:ssm:/imagebuilder/annex/<stage>/default-image-id), so new annexes launch it without any
# copying. Needs the AWS CLI v2 and credentials allowed to do exactly that.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

stage=
region=${AWS_REGION:-${AWS_DEFAULT_REGION:-}}
while [ $# -gt 0 ]; do
  case "$1" in
  --stage)
    stage=${2:-}
    shift 2 || true
    ;;
  --region)
    region=${2:-}
    shift 2 || true
    ;;
  *)
    echo "build-image: unknown argument $1 (usage: --stage STAGE [--region REGION])" >&2
    exit 2
    ;;
  esac
done
if ! [[ $stage =~ ^[a-z0-9-]{1,16}$ ]]; then
  echo "build-image: --stage STAGE is required (the stage you deployed)" >&2
  exit 2
fi
command -v aws >/dev/null 2>&1 || {
  echo "build-image: the AWS CLI (v2) is not installed" >&2
  exit 2
}
region_args=()
if [ -n "$region" ]; then
  region_args=(--region "$region")
fi

output() {
  aws "${region_args[@]}" cloudformation describe-stacks --stack-name "annex-$stage" \
    --query "Stacks[0].Outputs[?OutputKey=='$1'].OutputValue | [0]" --output text
}
bucket=$(output ImageAssetsBucketName)
pipeline=$(output ImagePipelineArn)
parameter=$(output DefaultImageParameterName)

archive=$(mktemp)
trap 'rm -f "$archive"' EXIT
tar -czf "$archive" --exclude image/builder image
aws "${region_args[@]}" s3 cp --only-show-errors "$archive" "s3://$bucket/image/annex-image.tar.gz"
echo "build-image: uploaded image/ to s3://$bucket/image/annex-image.tar.gz" >&2

build=$(aws "${region_args[@]}" imagebuilder start-image-pipeline-execution \
  --image-pipeline-arn "$pipeline" --query imageBuildVersionArn --output text)
echo "build-image: building $build (this takes 20-30 minutes)" >&2

status=
for _ in $(seq 1 180); do
  status=$(aws "${region_args[@]}" imagebuilder get-image --image-build-version-arn "$build" \
    --query image.state.status --output text)
  case "$status" in
  AVAILABLE) break ;;
  FAILED | CANCELLED | DEPRECATED | DELETED)
    reason=$(aws "${region_args[@]}" imagebuilder get-image --image-build-version-arn "$build" \
      --query image.state.reason --output text)
    echo "build-image: the build ended $status: $reason" >&2
    exit 1
    ;;
  esac
  sleep 20
done
if [ "$status" != AVAILABLE ]; then
  echo "build-image: still $status after an hour; see the Image Builder console for $build" >&2
  exit 1
fi
ami=$(aws "${region_args[@]}" imagebuilder get-image --image-build-version-arn "$build" \
  --query 'image.outputResources.amis[0].image' --output text)
echo "build-image: $ami is the default image of annex-$stage (SSM parameter $parameter)" >&2
echo "$ami"
