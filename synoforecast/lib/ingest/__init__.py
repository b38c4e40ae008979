"""Reading a sale-out workbook: the contract, the reader, validation, snapshots, change detection."""
