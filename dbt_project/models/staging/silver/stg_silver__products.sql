select
    sku,
    title,
    coalesce(category, 'uncategorized') as category,
    active
from {{ source('silver', 'products') }}
