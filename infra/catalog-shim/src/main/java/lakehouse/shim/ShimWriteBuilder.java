package lakehouse.shim;

import org.apache.spark.sql.connector.write.SupportsDynamicOverwrite;
import org.apache.spark.sql.connector.write.SupportsTruncate;
import org.apache.spark.sql.connector.write.Write;
import org.apache.spark.sql.connector.write.WriteBuilder;

/**
 * Spark's Python write builder plus dynamic partition overwrite for unpartitioned tables, where
 * "replace the partitions present in the data" means "replace the table" (a truncating
 * overwrite). {@link DeltaShimTable} only advertises {@code OVERWRITE_DYNAMIC} for unpartitioned
 * tables, so Spark never asks this builder for a dynamic overwrite of a partitioned one.
 */
final class ShimWriteBuilder implements SupportsDynamicOverwrite, SupportsTruncate {

  private final WriteBuilder inner;

  ShimWriteBuilder(WriteBuilder inner) {
    this.inner = inner;
  }

  @Override
  public WriteBuilder truncate() {
    ((SupportsTruncate) inner).truncate();
    return this;
  }

  @Override
  public WriteBuilder overwriteDynamicPartitions() {
    return truncate();
  }

  @Override
  public Write build() {
    return inner.build();
  }
}
