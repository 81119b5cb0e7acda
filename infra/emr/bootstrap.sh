#!/bin/bash
# EMR bootstrap action of the lakehouse (runs on every node before Spark starts; `lakehouse deploy emr` uploads
# it). Arguments: <s3 prefix of the deployment> <tables root> <Kafka bootstrap servers>.
# Installs the project's wheel (with its pinned Python dependencies, pyspark among them) and the pinned jars the
# deployment uploaded, and writes /usr/local/bin/lakehouse-emr: the `lakehouse` CLI with the deployment's
# environment, which the steps run (`lakehouse-emr submit --master yarn <job> -- <args>`).
# LAKEHOUSE_EMR_ROOT and LAKEHOUSE_EMR_BIN move /opt/lakehouse and /usr/local/bin (the test runs it in a folder).
set -euo pipefail
prefix="${1:?s3 prefix}" tables_root="${2:?tables root}" kafka="${3:?Kafka bootstrap servers}"
work="${LAKEHOUSE_EMR_ROOT:-/opt/lakehouse}" bin="${LAKEHOUSE_EMR_BIN:-/usr/local/bin}"
sudo mkdir -p "$work/jars" && sudo chown -R "$(id -u)" "$work"
aws s3 cp --recursive --quiet "$prefix/jars/" "$work/jars/spark/"
aws s3 cp --recursive --quiet "$prefix/wheel/" "$work/wheel/"
sudo python3 -m pip install --quiet "$work"/wheel/*.whl
sudo tee "$bin/lakehouse-emr" >/dev/null <<WRAPPER
#!/bin/bash
export LAKEHOUSE_JARS=$work/jars LAKEHOUSE_TABLES_ROOT=$tables_root LAKEHOUSE_KAFKA_BOOTSTRAP=$kafka
export LAKEHOUSE_HOME=\${LAKEHOUSE_HOME:-\$HOME/lakehouse} HADOOP_CONF_DIR=/etc/hadoop/conf YARN_CONF_DIR=/etc/hadoop/conf
exec python3 -m lakehouse.cli "\$@"
WRAPPER
sudo chmod 755 "$bin/lakehouse-emr"
