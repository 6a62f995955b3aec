module github.com/dynamostore/dynamostore/internal/stress

go 1.26.0

replace github.com/dynamostore/dynamostore => ../..
