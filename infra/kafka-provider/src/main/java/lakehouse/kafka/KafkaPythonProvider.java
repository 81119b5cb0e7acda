package lakehouse.kafka;

import org.apache.spark.sql.execution.datasources.v2.python.PythonDataSourceV2;
import org.apache.spark.sql.sources.DataSourceRegister;

/** Format `kafka` backed by the Python data source registered under that name (lakehouse.sources.kafka_source). */
public class KafkaPythonProvider extends PythonDataSourceV2 implements DataSourceRegister {
  // Spark's lookup sees a PythonDataSourceV2 and calls setShortName("kafka") itself (it may be set only once).
  @Override
  public String shortName() {
    return "kafka";
  }
}
