module github.com/dynamostore/dynamostore/internal/benchreport

go 1.26.0

replace github.com/dynamostore/dynamostore => ../..
