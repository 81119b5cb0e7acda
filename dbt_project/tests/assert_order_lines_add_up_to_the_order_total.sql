-- Each placed order's line amounts add up to its total (a generator or silver bug would break the sales mart).
select orders.order_id, orders.total_amount, sum(lines.line_amount) as lines_total
from {{ ref('int_orders') }} as orders
inner join {{ ref('int_order_lines') }} as lines using (order_id)
group by orders.order_id, orders.total_amount
having sum(lines.line_amount) != orders.total_amount
