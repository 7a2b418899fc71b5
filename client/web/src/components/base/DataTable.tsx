import type { ReactNode } from "react";

export interface Column<T> {
  key: string;
  header: string;
  cell: (row: T) => ReactNode;
  /** Sortable columns get a header button; the page decides what sorting means (often the server). */
  sortable?: boolean;
  numeric?: boolean;
  title?: string;
}

export interface Sort {
  key: string;
  direction: "ASC" | "DESC";
}

interface Props<T> {
  caption: string;
  columns: Column<T>[];
  rows: readonly T[];
  rowKey: (row: T) => string;
  sort?: Sort | null;
  onSort?: (key: string) => void;
  empty?: ReactNode;
  busy?: boolean;
}

/** A table with an accessible caption and sortable headers (aria-sort, keyboard-operable buttons). */
export function DataTable<T>({ caption, columns, rows, rowKey, sort, onSort, empty, busy }: Props<T>) {
  return (
    <div className="table-wrap" aria-busy={busy || undefined}>
      <table className="data-table">
        <caption className="visually-hidden">{caption}</caption>
        <thead>
          <tr>
            {columns.map((column) => {
              const sorted = sort?.key === column.key ? sort.direction : null;
              return (
                <th
                  key={column.key}
                  scope="col"
                  className={column.numeric ? "num" : undefined}
                  aria-sort={sorted ? (sorted === "ASC" ? "ascending" : "descending") : undefined}
                  title={column.title}
                >
                  {column.sortable && onSort ? (
                    <button type="button" className="sort" onClick={() => onSort(column.key)}>
                      {column.header}
                      <span aria-hidden="true">{sorted === "ASC" ? " ▲" : sorted === "DESC" ? " ▼" : ""}</span>
                    </button>
                  ) : (
                    column.header
                  )}
                </th>
              );
            })}
          </tr>
        </thead>
        <tbody>
          {rows.length === 0 ? (
            <tr>
              <td colSpan={columns.length} className="empty">
                {empty ?? "Nothing here yet."}
              </td>
            </tr>
          ) : (
            rows.map((row) => (
              <tr key={rowKey(row)}>
                {columns.map((column) => (
                  <td key={column.key} className={column.numeric ? "num" : undefined} data-label={column.header}>
                    {column.cell(row)}
                  </td>
                ))}
              </tr>
            ))
          )}
        </tbody>
      </table>
    </div>
  );
}
