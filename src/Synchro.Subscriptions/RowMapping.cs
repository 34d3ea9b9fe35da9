using System.Collections.Concurrent;
using System.Globalization;
using System.Reflection;
using Synchro.Contracts;

namespace Synchro.Subscriptions;

/// <summary>
/// Reads a <see cref="Row"/> as a typed record or class. A column maps to the constructor parameter
/// or settable property of the same name, ignoring case and underscores (<c>user_id</c> →
/// <c>UserId</c>); columns without a member are ignored, members without a column keep their default.
/// Values are read exactly through <see cref="ColumnValueParsing"/>: <c>numeric</c> as decimal,
/// <c>timestamptz</c> as <see cref="DateTimeOffset"/>, <c>bytea</c> as bytes, arrays as lists.
/// </summary>
public static class RowMapping
{
    private static readonly ConcurrentDictionary<Type, TypeMap> Maps = new();

    /// <summary>The row as a <typeparamref name="T"/>.</summary>
    /// <exception cref="InvalidOperationException">A mapped column was not sent (an unchanged TOAST value); use <see cref="As{T}(Row, T)"/> with the row you hold.</exception>
    /// <exception cref="FormatException">A value cannot be read as its member's type.</exception>
    public static T As<T>(this Row row) => As(row, default(T));

    /// <summary>
    /// The row as a <typeparamref name="T"/>, taking each value PostgreSQL did not send (an unchanged
    /// TOAST value in an update) from <paramref name="previous"/>: the record as you held it before this change.
    /// </summary>
    public static T As<T>(this Row row, T? previous)
    {
        ArgumentNullException.ThrowIfNull(row);
        var map = Maps.GetOrAdd(typeof(T), type => new TypeMap(type));
        return (T)map.Create(row, previous);
    }

    private sealed class TypeMap
    {
        private readonly Type _type;
        private readonly ConstructorInfo _constructor;
        private readonly ParameterInfo[] _parameters;
        private readonly PropertyInfo[] _properties;

        public TypeMap(Type type)
        {
            _type = type;
            _constructor = type.GetConstructors().OrderByDescending(c => c.GetParameters().Length).FirstOrDefault()
                ?? throw new InvalidOperationException($"{type.Name} has no public constructor to read a row into.");
            _parameters = _constructor.GetParameters();
            var byConstructor = _parameters.Select(p => Normalise(p.Name!)).ToHashSet(StringComparer.Ordinal);
            _properties = [.. type.GetProperties(BindingFlags.Public | BindingFlags.Instance).Where(p => p.CanWrite && !byConstructor.Contains(Normalise(p.Name)))];
        }

        public object Create(Row row, object? previous)
        {
            var columns = new Dictionary<string, ColumnValue>(StringComparer.Ordinal);
            foreach (var value in row)
                columns.TryAdd(Normalise(value.Name), value);

            var arguments = _parameters.Select(p => Read(columns, p.Name!, p.ParameterType, previous, p.HasDefaultValue ? p.DefaultValue : Default(p.ParameterType))).ToArray();
            var result = _constructor.Invoke(arguments);
            foreach (var property in _properties)
            {
                if (columns.ContainsKey(Normalise(property.Name)))
                    property.SetValue(result, Read(columns, property.Name, property.PropertyType, previous, null));
            }

            return result;
        }

        private object? Read(Dictionary<string, ColumnValue> columns, string member, Type type, object? previous, object? fallback)
        {
            if (!columns.TryGetValue(Normalise(member), out var value))
                return fallback;
            if (value.IsSent)
                return Convert(value, type);
            if (previous is null)
                throw new InvalidOperationException(
                    $"Column {value.Name} was not sent ({value.Unsent}): the value it had before this change still stands. Read the row with As(previous), passing the {_type.Name} you hold.");
            return _type.GetProperty(member, BindingFlags.Public | BindingFlags.Instance | BindingFlags.IgnoreCase)?.GetValue(previous) ?? fallback;
        }
    }

    private static object? Convert(ColumnValue value, Type type)
    {
        var underlying = Nullable.GetUnderlyingType(type);
        if (value.IsNull)
        {
            return underlying is not null || !type.IsValueType
                ? null
                : throw new InvalidOperationException($"Column {value.Name} is NULL but {type.Name} cannot be null: make the member nullable.");
        }

        var target = underlying ?? type;
        if (target == typeof(string))
            return value.Text;
        if (target == typeof(bool))
            return value.AsBoolean();
        if (target == typeof(long))
            return value.AsInt64();
        if (target == typeof(int))
            return checked((int)value.AsInt64());
        if (target == typeof(short))
            return checked((short)value.AsInt64());
        if (target == typeof(decimal))
            return value.AsDecimal();
        if (target == typeof(double))
            return value.AsDouble();
        if (target == typeof(float))
            return (float)value.AsDouble();
        if (target == typeof(Guid))
            return value.AsGuid();
        if (target == typeof(DateOnly))
            return value.AsDate();
        if (target == typeof(DateTime))
            return value.AsDateTime();
        if (target == typeof(DateTimeOffset))
            return value.AsDateTimeOffset();
        if (target == typeof(TimeOnly))
            return TimeOnly.Parse(value.Text!, CultureInfo.InvariantCulture);
        if (target == typeof(byte[]))
            return value.AsBytes();
        if (target.IsEnum)
            return Enum.Parse(target, value.Text!, ignoreCase: true);
        if (target.IsAssignableFrom(typeof(List<object?>)))
            return value.AsArray();
        if (target == typeof(string[]))
            return value.AsArray().Select(e => (string?)e).ToArray();
        throw new NotSupportedException($"Column {value.Name} ({value.Type}) cannot be read as {type.Name}; read it as string and parse it yourself.");
    }

    private static object? Default(Type type) => type.IsValueType ? Activator.CreateInstance(type) : null;

    private static string Normalise(string name) => name.Replace("_", "", StringComparison.Ordinal).ToUpperInvariant();
}
