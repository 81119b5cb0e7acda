package lakehouse.shim;

import java.util.Optional;

import org.apache.spark.sql.connector.write.LogicalWriteInfo;
import org.apache.spark.sql.types.StructType;
import org.apache.spark.sql.util.CaseInsensitiveStringMap;

/** The write info Spark passed in, with the options replaced by the merged table options. */
final class ShimWriteInfo implements LogicalWriteInfo {

  private final LogicalWriteInfo info;
  private final CaseInsensitiveStringMap options;

  ShimWriteInfo(LogicalWriteInfo info, CaseInsensitiveStringMap options) {
    this.info = info;
    this.options = options;
  }

  @Override
  public CaseInsensitiveStringMap options() {
    return options;
  }

  @Override
  public String queryId() {
    return info.queryId();
  }

  @Override
  public StructType schema() {
    return info.schema();
  }

  @Override
  public Optional<StructType> rowIdSchema() {
    return info.rowIdSchema();
  }

  @Override
  public Optional<StructType> metadataSchema() {
    return info.metadataSchema();
  }
}
